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
from rapidfuzz import fuzz

from transforms.errors import InvalidValue
from transforms.frames import rows_of
from transforms.kinds import fold

# Paris, Lyon and Marseille: arrondissement codes fold into the commune.
PLM = {"75": "75056", "69": "69123", "13": "13055"}
_ARTICLES = re.compile(r"^(?:LE|LA|LES|L)\s+")
_CEDEX = re.compile(r"\bCEDEX\b.*$")
_ARRONDISSEMENT = re.compile(r"\s+\d{1,2}(?:E|ER|EME)?(?:\s+ARRONDISSEMENT)?$")
_STE = re.compile(r"\bSTE\b")
_ST = re.compile(r"\bST\b")
# Collectivités d'outre-mer whose postcodes sit in a département's range: Saint-Barthélemy
# and Saint-Martin (971xx, Guadeloupe's) and Saint-Pierre-et-Miquelon (975xx).
_COM_POSTCODES = {"97133": "977", "97150": "978", "97500": "975"}


def normalize_postcode(value: str) -> str | None:
    """Five digits; a lost leading zero is put back ("7200" → "07200"); None when empty."""
    raw = (value or "").strip()
    if not raw:
        return None
    raw = re.sub(r"\.0$", "", raw)
    # digits 0-9 only: \d alone takes other scripts' digits ("٠٧٢٠٠"), which no map shows
    m = (re.search(r"\b(\d{2})\s?(\d{3})\b", raw, re.ASCII)
         or re.fullmatch(r"(\d)(\d{3})", raw, re.ASCII))
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
    if code_postal in _COM_POSTCODES:
        return _COM_POSTCODES[code_postal]
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
    m = re.search(r"(?<![0-9A-Z])(97[1-8]|2[AB]|\d{1,2})(?![0-9A-Z])", raw, re.ASCII)
    if not m or m.group(1) in ("0", "00", "20"):
        raise InvalidValue("departement_invalide", f"{value!r} is not a département code")
    return m.group(1).zfill(2)


def departement_of_insee(code_insee: str) -> str:
    """The département of a code INSEE (first two characters, three overseas)."""
    return code_insee[:3] if code_insee.startswith("97") else code_insee[:2]


def name_key(name: str) -> str:
    """A commune name folded for comparison: no accents, articles, CEDEX or arrondissement."""
    key = _CEDEX.sub("", fold(name)).strip()
    key = _ARRONDISSEMENT.sub("", key)
    key = _STE.sub("SAINTE", key)
    key = _ST.sub("SAINT", key)
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

    @property
    def approximate(self) -> bool:
        """Found through a former code or name, or a close name: worth a warning."""
        return self.method in APPROXIMATE_METHODS


# How a commune was found when the source's code or name is not today's: each gives a
# warning (commune_ancienne or commune_approchee) so that the source's owner can fix it.
APPROXIMATE_METHODS = {
    "code_insee_ancien": "commune_ancienne",  # a code a commune nouvelle absorbed
    "code_insee_corse": "commune_ancienne",  # 20xxx, before Corsica's split in 1976
    "code_postal+commune_ancienne": "commune_ancienne",  # a former or delegated name
    "departement+commune_ancienne": "commune_ancienne",
    "code_postal+commune_approchee": "commune_approchee",  # Louhans → Louhans-Châteaurenaud
    "code_postal+nom_different": "commune_approchee",  # the postcode's only commune
}
# Words too common to tell communes apart by a shared beginning.
_GENERIC = {"SAINT", "SAINTE", "SAINTS", "SAINTES", "LE", "LA", "LES", "MONT", "PORT"}


def _close(key: str, name: str) -> bool:
    """One name is the other plus words ("LOUHANS" / "LOUHANS CHATEAURENAUD", "BERCK SUR MER"
    / "BERCK"), or they differ by a typo or two."""
    short, long_ = sorted((key, name), key=len)
    if short.split()[0] in _GENERIC and len(short.split()) == 1:
        return False
    if len(short) >= 4 and long_.startswith(short + " "):
        return True
    return len(short) >= 6 and fuzz.ratio(key, name) >= 90


class CommuneIndex:
    """Lookups over the communes reference (`transforms.communes.parse_reference`): current
    communes and arrondissements, and the former codes and names that lead to them."""

    def __init__(self, communes: pd.DataFrame, postcodes: pd.DataFrame, departements: pd.DataFrame):
        # the reference's version, set by whoever loads it: what a staged row's outcome
        # depends on (transforms.staging.RowMemo)
        self.version = ""
        self._rows: dict[str, dict] = {}
        self._alias: dict[str, str] = {}  # former commune code → current commune code
        # (département, folded name) → current codes; today's names and former ones apart
        self._by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._by_old_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._anywhere: dict[str, set[str]] = defaultdict(set)  # today's name, any département
        records = rows_of(communes)
        for r in records:
            if r["type"] in ("COM", "ARM"):
                self._rows[r["code_insee"]] = r
        for r in records:
            code, parent = r["code_insee"], r.get("parent_code")
            if r["type"] not in ("COM", "ARM") and parent and code not in self._rows:
                self._alias.setdefault(code, parent)
        self._key: dict[str, str] = {}  # current code → its folded name
        for r in records:
            # Arrondissements are reached through postcodes; by name, "Lyon" means the city.
            if r["type"] == "ARM" or not r.get("nom"):
                continue
            target = r["code_insee"] if r["type"] == "COM" else r.get("parent_code")
            if target in self._rows:
                dep = self._rows[target]["departement"]
                names = self._by_name if r["type"] == "COM" else self._by_old_name
                key = name_key(r["nom"])
                names[(dep, key)].add(target)
                if r["type"] == "COM":
                    self._key[target] = key
                    self._anywhere[key].add(target)
        self._by_postcode: dict[str, list[str]] = defaultdict(list)
        for cp, code in zip(postcodes["code_postal"], postcodes["code_insee"], strict=True):
            if code in self._rows and code not in self._by_postcode[cp]:
                self._by_postcode[cp].append(code)
        self._region = dict(zip(departements["departement"], departements["region"], strict=True))

    def region_of(self, departement: str | None) -> str | None:
        """The région code of a département code."""
        return self._region.get(departement or "")

    def row(self, code_insee: str) -> dict | None:
        """The reference row of a commune or arrondissement code."""
        return self._rows.get(code_insee)

    def place(self, code: str, method: str) -> Place:
        """The Place of a current commune or arrondissement code."""
        r = self._rows[code]
        arrondissement = None
        if r["type"] == "ARM":
            arrondissement, r = code, self._rows[r["parent_code"] or PLM[code[:2]]]
        return Place(
            r["code_insee"], arrondissement, r["nom"], r["departement"], r["region"], method
        )

    def _name_of(self, code: str) -> str:
        r = self._rows[code]
        if r["type"] == "ARM":
            return self._key.get(r["parent_code"] or "", "")
        return self._key.get(code, "")

    def _named(self, candidates: list[str], key: str) -> tuple[list[str], str]:
        """Candidates named `key` today, else by a former name, else by a close name; and
        which of the three."""
        today = [c for c in candidates if self._name_of(c) == key]
        if today:
            return today, "commune"
        former = [c for c in candidates
                  if c in self._by_old_name.get((self._rows[c]["departement"], key), ())]
        if former:
            return former, "commune_ancienne"
        return [c for c in candidates if _close(key, self._name_of(c))], "commune_approchee"

    def _by_code(self, code_insee: str) -> Place | None:
        if code_insee in self._rows:
            return self.place(code_insee, "code_insee")
        if code_insee in self._alias and self._alias[code_insee] in self._rows:
            return self.place(self._alias[code_insee], "code_insee_ancien")
        if re.fullmatch(r"20\d{3}", code_insee):
            # Corsica before 1976: 20xxx became 2Axxx or 2Bxxx, the number kept
            found = [c for c in (f"2A{code_insee[2:]}", f"2B{code_insee[2:]}") if c in self._rows]
            if len(found) == 1:
                return self.place(found[0], "code_insee_corse")
        return None

    def resolve(
        self, code_postal: str | None, commune: str | None, code_insee: str | None = None
    ) -> Place | None:
        """Find the commune of an address; None when the reference cannot place it."""
        if code_insee:
            found = self._by_code(code_insee.strip().upper())
            if found:
                return found
        key = name_key(commune or "")
        candidates = self._by_postcode.get(code_postal or "", [])
        if candidates:
            if key:
                named, how = self._named(candidates, key)
                if len(named) == 1:
                    return self.place(named[0], f"code_postal+{how}")
            if len(candidates) == 1:
                same = not key or self._name_of(candidates[0]) == key
                return self.place(candidates[0],
                                  "code_postal" if same else "code_postal+nom_different")
        dep = departement_of_postcode(code_postal)
        if key and dep:
            for names, how in ((self._by_name, "commune"), (self._by_old_name,
                                                            "commune_ancienne")):
                codes = names.get((dep, key), set())
                if len(codes) == 1:
                    return self.place(next(iter(codes)), f"departement+{how}")
        if key and not dep:
            codes = self._anywhere.get(key, set())
            if len(codes) == 1:
                return self.place(next(iter(codes)), "commune")
        return None
