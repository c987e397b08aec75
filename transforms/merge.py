"""Merge v0: records with the same SIRET are one place; golden records by survivorship.

Each field comes from the highest-priority source that has it, then the freshest (`date_maj`),
then by source name and source_id so that the result never depends on the order of rows or
sources. The address fields travel together (a postcode from one source and a street from
another would describe no real place). The source of each field is kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pandas as pd

from transforms.identifiers import is_placeholder_siret
from transforms.kinds import KNOWN_KINDS

SINGLE_FIELDS = ("siret", "siren", "nom", "enseigne", "telephone", "courriel", "site_web")
ADDRESS_FIELDS = (
    "adresse",
    "complement_adresse",
    "code_postal",
    "commune",
    "code_insee",
    "code_arrondissement",
    "departement",
    "region",
)
STRUCTURE_COLUMNS = [
    "structure_id",
    "identity_key",
    *SINGLE_FIELDS,
    "types",
    *ADDRESS_FIELDS,
    "date_maj",
    "etat_administratif",
    "date_fermeture",
    "sources",
    "provenance",
    "coordinate_candidates",
]
LINK_COLUMNS = ["structure_id", "source", "source_id", "rule"]


def identity_key(siret: str | None, source: str, source_id: str) -> tuple[str, str]:
    """(key, rule): a real SIRET identifies a place; placeholders and blanks do not."""
    if siret and not is_placeholder_siret(siret):
        return f"siret:{siret}", "siret"
    return f"record:{source}:{source_id}", "source_record"


def new_structure_id(key: str, taken: set[str]) -> str:
    """A short ID derived from the identity key, so that it does not depend on run order."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"{key}#{salt}".encode() if salt else key.encode()).hexdigest()
        candidate = f"siae-{digest[:10]}"
        if candidate not in taken:
            return candidate
        salt += 1


def _present(value: object) -> bool:
    if value is None:
        return False
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):
        return True  # lists


def _order(group: pd.DataFrame, priority: Mapping[str, int]) -> pd.DataFrame:
    g = group.assign(
        _prio=group["source"].map(lambda s: -priority.get(s, 0)),
        _date=group["date_maj"].map(lambda d: -d.toordinal() if _present(d) else 0),
    )
    return g.sort_values(["_prio", "_date", "source", "source_id"], kind="mergesort")


def merge_records(
    records: pd.DataFrame, priority: Mapping[str, int], known_ids: Mapping[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Golden records, links, and the identity key → structure_id map (known plus new ones).

    `known_ids` is the persisted map: a key seen before keeps its ID forever.
    """
    ids = dict(known_ids)
    taken = set(ids.values())
    keyed = records.copy()
    rules = [
        identity_key(s, src, sid)
        for s, src, sid in zip(keyed["siret"], keyed["source"], keyed["source_id"], strict=True)
    ]
    keyed["_key"] = [k for k, _ in rules]
    keyed["_rule"] = [r for _, r in rules]
    structures, links = [], []
    for key in sorted(keyed["_key"].unique()):
        group = _order(keyed[keyed["_key"] == key], priority)
        if key not in ids:
            ids[key] = new_structure_id(key, taken)
            taken.add(ids[key])
        sid = ids[key]
        rows = group.to_dict("records")
        out: dict[str, object] = {"structure_id": sid, "identity_key": key}
        provenance: dict[str, str] = {}
        for f in SINGLE_FIELDS:
            best = next((r for r in rows if _present(r[f])), None)
            out[f] = best[f] if best else None
            if best:
                provenance[f] = best["source"]
        block = next((r for r in rows if _present(r["code_insee"])), None) or next(
            (r for r in rows if _present(r["adresse"]) or _present(r["code_postal"])), None
        )
        for f in ADDRESS_FIELDS:
            out[f] = block[f] if block and _present(block[f]) else None
            if block and _present(block[f]):
                provenance[f] = block["source"]
        kinds = {k for r in rows for k in r["types"]}
        out["types"] = [k for k in KNOWN_KINDS if k in kinds]
        dates = [r["date_maj"] for r in rows if _present(r["date_maj"])]
        out["date_maj"] = max(dates) if dates else None
        # A place is closed as soon as one source (SIRENE through the annuaire) says so.
        states = {r["etat_administratif"] for r in rows if _present(r["etat_administratif"])}
        out["etat_administratif"] = "F" if "F" in states else ("A" if states else None)
        closings = [r["date_fermeture"] for r in rows if _present(r["date_fermeture"])]
        out["date_fermeture"] = max(closings) if closings else None
        out["sources"] = sorted({r["source"] for r in rows})
        out["provenance"] = json.dumps(provenance, sort_keys=True)
        out["coordinate_candidates"] = [
            (float(r["longitude"]), float(r["latitude"]), r["source"])
            for r in rows
            if _present(r["latitude"]) and _present(r["longitude"])
        ]
        structures.append([out[c] for c in STRUCTURE_COLUMNS])
        links.extend([sid, r["source"], r["source_id"], r["_rule"]] for r in rows)
    return (
        pd.DataFrame(structures, columns=STRUCTURE_COLUMNS, dtype=object),
        pd.DataFrame(links, columns=LINK_COLUMNS, dtype=object),
        ids,
    )
