"""Where a structure is administratively: postcode, commune, code INSEE, département, région.

Sources disagree (a `departement` that contradicts the postcode, a CEDEX postcode, a former
commune's name), so the commune is resolved against the reference and the département and
région are derived from it, never copied from the source.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from transforms.errors import InvalidValue
from transforms.kinds import fold

# Paris, Lyon and Marseille: arrondissement codes fold into the commune.
PLM = {"75": "75056", "69": "69123", "13": "13055"}
_ARTICLES = re.compile(r"^(?:LE|LA|LES|L)\s+")


def normalize_postcode(value: str) -> str | None:
    """Five digits; a lost leading zero is put back ("7200" → "07200"); None when empty."""
    raw = (value or "").strip()
    if not raw:
        return None
    raw = re.sub(r"\.0$", "", raw)
    m = re.search(r"\b(\d{2})\s?(\d{3})\b", raw) or re.fullmatch(r"(\d)(\d{3})", raw)
    if not m:
        raise InvalidValue("code_postal_invalide", f"{value!r} is not a French postcode")
    code = "".join(m.groups()).zfill(5)
    if code.startswith("00"):
        raise InvalidValue("code_postal_invalide", f"{value!r} is not a French postcode")
    return code


def departement_of_postcode(code_postal: str | None) -> str | None:
    """The département a postcode usually belongs to (Corsica 2A/2B, overseas 97x)."""
    if not code_postal:
        return None
    if code_postal.startswith("97"):
        return code_postal[:3]
    if code_postal.startswith("20"):
        return "2A" if code_postal < "20200" else "2B"
    return code_postal[:2]


def normalize_departement(value: str) -> str | None:
    """A département code as sources write it ("1", "01", "2a", "Rhône (69)", "974") → "01",
    "2A", "69", "974"; None when empty. Only the shape is checked, not that it exists."""
    raw = (value or "").strip().upper()
    if not raw:
        return None
    raw = re.sub(r"\.0$", "", raw)
    m = re.search(r"(?<![0-9A-Z])(97[1-6]|2[AB]|\d{1,2})(?![0-9A-Z])", raw)
    if not m or m.group(1) in ("0", "00", "20"):
        raise InvalidValue("departement_invalide", f"{value!r} is not a département code")
    return m.group(1).zfill(2)


def departement_of_insee(code_insee: str) -> str:
    """The département of a code INSEE (first two characters, three overseas)."""
    return code_insee[:3] if code_insee.startswith("97") else code_insee[:2]


def name_key(name: str) -> str:
    """A commune name folded for comparison: no accents, articles, CEDEX or arrondissement."""
    key = fold(name)
    key = re.sub(r"\bCEDEX\b.*$", "", key).strip()
    key = re.sub(r"\s+\d{1,2}(?:E|ER|EME)?(?:\s+ARRONDISSEMENT)?$", "", key)
    key = re.sub(r"\bSTE\b", "SAINTE", key)
    key = re.sub(r"\bST\b", "SAINT", key)
    return _ARTICLES.sub("", key).strip()


@dataclass(frozen=True)
class Place:
    """A resolved commune; `method` tells how it was found (for provenance)."""

    code_insee: str
    code_arrondissement: str | None
    commune: str
    departement: str
    region: str | None
    method: str


class CommuneIndex:
    """Lookups over the communes reference (`transforms.communes.parse_reference`)."""

    def __init__(self, communes: pd.DataFrame, postcodes: pd.DataFrame, departements: pd.DataFrame):
        self._rows: dict[str, dict] = {}
        self._alias: dict[str, str] = {}  # former commune code → current commune code
        self._by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in communes.to_dict("records"):
            code, kind = r["code_insee"], r["type"]
            if kind in ("COM", "ARM"):
                self._rows[code] = r
            elif r.get("parent_code"):
                self._alias.setdefault(code, r["parent_code"])
        for r in communes.to_dict("records"):
            # Arrondissements are reached through postcodes; by name, "Lyon" means the city.
            if r["type"] == "ARM":
                continue
            target = r["code_insee"] if r["type"] == "COM" else r.get("parent_code")
            if target in self._rows:
                dep = self._rows[target]["departement"]
                self._by_name[(dep, name_key(r["nom"]))].add(target)
        self._by_postcode: dict[str, list[str]] = defaultdict(list)
        for cp, code in zip(postcodes["code_postal"], postcodes["code_insee"], strict=True):
            if code in self._rows:
                self._by_postcode[cp].append(code)
        self._region = dict(zip(departements["departement"], departements["region"], strict=True))

    def region_of(self, departement: str | None) -> str | None:
        """The région code of a département code."""
        return self._region.get(departement or "")

    def row(self, code_insee: str) -> dict | None:
        """The reference row of a commune or arrondissement code."""
        return self._rows.get(code_insee)

    def _place(self, code: str, method: str) -> Place:
        r = self._rows[code]
        arrondissement = None
        if r["type"] == "ARM":
            arrondissement, r = code, self._rows[r["parent_code"] or PLM[code[:2]]]
        return Place(
            r["code_insee"], arrondissement, r["nom"], r["departement"], r["region"], method
        )

    def _named(self, candidates: list[str], key: str) -> list[str]:
        """Candidates whose name, parent's name or former communes' names fold to `key`."""
        out = []
        for code in candidates:
            r = self._rows[code]
            parent = self._rows.get(r["parent_code"] or "") if r["type"] == "ARM" else None
            if (
                name_key(r["nom"]) == key
                or (parent is not None and name_key(parent["nom"]) == key)
                or code in self._by_name.get((r["departement"], key), ())
            ):
                out.append(code)
        return out

    def resolve(
        self, code_postal: str | None, commune: str | None, code_insee: str | None = None
    ) -> Place | None:
        """Find the commune of an address; None when the reference cannot place it."""
        if code_insee:
            code = self._alias.get(code_insee, code_insee)
            if code in self._rows:
                return self._place(code, "code_insee")
        key = name_key(commune or "")
        candidates = self._by_postcode.get(code_postal or "", [])
        if candidates:
            if key:
                named = self._named(candidates, key)
                if len(named) == 1:
                    return self._place(named[0], "code_postal+commune")
            if len(candidates) == 1:
                return self._place(candidates[0], "code_postal")
        dep = departement_of_postcode(code_postal)
        if key and dep:
            codes = self._by_name.get((dep, key), set())
            if len(codes) == 1:
                return self._place(next(iter(codes)), "departement+commune")
        if key and not dep:
            codes = set().union(*(v for (_, k), v in self._by_name.items() if k == key))
            if len(codes) == 1:
                return self._place(next(iter(codes)), "commune")
        return None
