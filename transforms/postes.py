"""Open positions ("postes") of les emplois de l'inclusion: who is recruiting.

Les emplois' API lists, for each SIAE, `postes[]`: `rome` (the ROME job code),
`appellation_modifiee` (the title), `recrutement_ouvert` (the strings "True"/"False"),
`cree_le`, `mis_a_jour_le`. A record keeps them as normalised JSON; a structure publishes
whether it recruits and the titles of its open positions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from transforms.text import clean_text

_ROME = re.compile(r"^[A-N]\d{4}$")
POSTE_COLUMNS = ["rome", "appellation", "recrutement_ouvert", "cree_le", "mis_a_jour_le"]


def _open(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "oui", "yes")


def normalize_postes(value: str | None) -> str | None:
    """A source's positions (a JSON list, as the API gives them) → normalised JSON, or None
    when the source says nothing about positions."""
    if value is None or not str(value).strip():
        return None
    try:
        items = json.loads(value)
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        rome = (clean_text(str(item.get("rome") or "")) or "").upper()
        title = clean_text(str(item.get("appellation_modifiee") or item.get("appellation")
                               or ""))
        if not title and not rome:
            continue
        out.append({"rome": rome if _ROME.match(rome) else None, "appellation": title,
                    "recrutement_ouvert": _open(item.get("recrutement_ouvert")),
                    "cree_le": (str(item.get("cree_le") or "")[:10] or None),
                    "mis_a_jour_le": (str(item.get("mis_a_jour_le") or "")[:10] or None)})
    return json.dumps(sorted(out, key=lambda p: (p["rome"] or "", p["appellation"] or "")),
                      ensure_ascii=False)


def open_titles(postes_json: Iterable[str | None]) -> tuple[bool | None, list[str]]:
    """(recruits?, the titles of the open positions) over the records of one place; None when
    no record says anything about positions."""
    known, titles = False, set()
    for text in postes_json:
        if not text:
            continue
        known = True
        titles |= {p["appellation"] for p in json.loads(text)
                   if p["recrutement_ouvert"] and p["appellation"]}
    return (bool(titles) if known else None), sorted(titles)


def poste_rows(records: Iterable[dict], structure_of: dict[tuple[str, str], str]
               ) -> list[list]:
    """Rows of core.postes: every position of every record, with its structure."""
    out = []
    for r in records:
        if not r.get("postes"):
            continue
        sid = structure_of.get((r["source"], r["source_id"]))
        for p in json.loads(r["postes"]):
            out.append([sid, r["source"], r["source_id"], *(p[c] for c in POSTE_COLUMNS)])
    return out
