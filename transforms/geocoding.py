"""Geocoding with the Base Adresse Nationale: address preparation, the CSV contract, acceptance.

The BAN's batch endpoint takes a CSV and answers with the same rows plus result columns; the
answer's column order has changed in production before, so results are read by header name.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from transforms.kinds import fold
from transforms.places import PLM

# Columns sent: the query is made of the first three, the fourth filters by commune.
QUERY_COLUMNS = ("adresse", "code_postal", "commune")
FILTER_COLUMN = "code_insee"
REQUEST_COLUMNS = ("key", *QUERY_COLUMNS, FILTER_COLUMN)
STREET_TYPES = ("housenumber", "street", "locality")

# Postal mentions that mislead the geocoder (BP 52, CS 30001, CEDEX 07, TSA 10001).
_POSTAL = re.compile(r"\b(?:B\.?P\.?|C\.?S\.?|TSA|CEDEX)\s*\d*\b\.?", re.IGNORECASE)
_ABBREVIATIONS = {
    "av": "avenue", "ave": "avenue", "bd": "boulevard", "bld": "boulevard", "blvd": "boulevard",
    "ch": "chemin", "che": "chemin", "chem": "chemin", "pl": "place", "rte": "route",
    "imp": "impasse", "all": "allée", "fbg": "faubourg", "sq": "square", "crs": "cours",
    "pass": "passage", "za": "zone artisanale", "zi": "zone industrielle",
    "zac": "zone d'aménagement concerté", "st": "saint", "ste": "sainte", "r": "rue",
    "qu": "quai", "lot": "lotissement", "res": "résidence", "rpt": "rond-point",
}
_WORD = re.compile(r"\b([A-Za-z]+)\b\.?")
_SPACES = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s,;-]+$")


def clean_address(adresse: str | None, complement: str | None = None) -> str | None:
    """The street line to send: postal mentions removed, abbreviations expanded; the second
    line is used only when the first is empty (it repeats it or holds a BP most of the time)."""
    line = (adresse or "").strip() or (complement or "").strip()
    if not line:
        return None
    line = _POSTAL.sub(" ", line)

    def expand(m: re.Match) -> str:
        word = m.group(1)
        return _ABBREVIATIONS.get(word.lower(), m.group(0) if not m.group(0).endswith(".")
                                  else word)

    line = _WORD.sub(expand, line)
    line = _TRAILING.sub("", _SPACES.sub(" ", line)).strip(" ,")
    return line or None


def fold_citycode(code_insee: str | None) -> str | None:
    """Paris, Lyon and Marseille arrondissement codes fold into the city's code."""
    if not code_insee:
        return None
    for prefix, city in PLM.items():
        if code_insee.startswith(prefix) and code_insee != city and (
                (prefix == "75" and code_insee.startswith("751"))
                or (prefix == "69" and code_insee.startswith("6938"))
                or (prefix == "13" and code_insee.startswith("132"))):
            return city
    return code_insee


class Query(NamedTuple):
    """One address to send, in the order of the request's columns (a tuple: a national run
    makes 370,000 of them: 0.3 µs each, against 0.8 µs for a frozen dataclass)."""

    key: str
    adresse: str
    code_postal: str
    commune: str
    code_insee: str

    def row(self) -> list[str]:
        return list(self)


def make_query(structure: Mapping[str, object]) -> Query | None:
    """The BAN query of a structure, or None when it has no street address to look up."""
    adresse = clean_address(structure.get("adresse"), structure.get("complement_adresse"))
    citycode = fold_citycode(structure.get("code_insee"))
    if not adresse or not (citycode or structure.get("code_postal")):
        return None
    postcode, commune = structure.get("code_postal") or "", structure.get("commune") or ""
    key = hashlib.sha256("|".join((fold(adresse), _fold_place(postcode), _fold_place(commune),
                                   citycode or "")).encode()).hexdigest()[:32]
    return Query(key, adresse, postcode, commune, citycode or "")


# Postcodes and commune names repeat over a national run (35,000 communes): folded once.
_fold_place = functools.lru_cache(maxsize=1 << 16)(fold)


def forget_folded_places() -> None:
    """Drop the folded postcodes and commune names once a run's queries are made: kept, their
    tens of thousands of small strings hold on to the allocator's memory pages that the
    step's millions of other objects have left (with the communes' polygons, 350 pages of
    1 MiB after a national run's locate step)."""
    _fold_place.cache_clear()

# What a structure's query is made from (make_query reads nothing else).
ADDRESS_FIELDS = ("adresse", "complement_adresse", "code_insee", "code_postal", "commune")
_UNSEEN = object()


@dataclass
class QueryMemo:
    """Each address's query (make_query) by its fields' values, from the last run (`known`)
    and for the next one (`kept`: the addresses of this run only). Making the queries of a
    national run took 15-20 µs each, 6-7 s, for addresses nearly all unchanged. The caller
    keeps it between runs and drops it when the code that makes queries changes."""

    known: dict = field(default_factory=dict)
    kept: dict = field(default_factory=dict)

    def query(self, structure: Mapping[str, object]) -> Query | None:
        """make_query(structure), from the memo when its address was seen."""
        address = tuple(map(structure.get, ADDRESS_FIELDS))
        made = self.known.get(address, _UNSEEN)
        if made is _UNSEEN:
            made = make_query(structure)
            made = None if made is None else tuple(made)  # plain tuples: read back faster
        self.kept[address] = made
        return None if made is None else Query._make(made)


def request_csv(queries: Iterable[Query]) -> bytes:
    """The CSV file posted to /search/csv/ (UTF-8, header row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REQUEST_COLUMNS)
    writer.writerows(queries)  # a Query is the row, in REQUEST_COLUMNS' order
    return out.getvalue().encode("utf-8")


class Result(NamedTuple):
    """The geocoder's answer for one query. A tuple: a national run reads 340,000 of them
    (a frozen dataclass took 1.5 µs each to make)."""

    key: str
    status: str  # ok | not-found | skipped | error
    latitude: float | None = None
    longitude: float | None = None
    score: float | None = None
    type: str | None = None
    label: str | None = None
    citycode: str | None = None


def _float(value: str | None) -> float | None:
    try:
        f = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return f if f is None or math.isfinite(f) else None


def parse_response(data: bytes) -> dict[str, Result]:
    """Results by key, read by column name; a BOM, extra or reordered columns and a missing
    `result_status` (addok's variant) are all fine."""
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or "key" not in header:
        raise ValueError(f"the geocoder's answer has no 'key' column: {text[:120]!r}")
    missing = [c for c in ("latitude", "longitude", "result_score") if c not in header]
    if missing:
        raise ValueError(f"the geocoder's answer lacks {', '.join(missing)}")
    # rows as lists, read by position (a dict per row took twice as long). As DictReader's:
    # a short row's missing cells and a column the answer lacks read None (a None put at
    # the end of every row).
    width = len(header)
    at = {c: i for i, c in enumerate(header)}  # a repeated name: its last (as DictReader)
    key, lat_at, lon_at, score_at, type_at, label_at, city_at, status_at = (
        at.get(c, -1) for c in ("key", "latitude", "longitude", "result_score",
                                "result_type", "result_label", "result_citycode",
                                "result_status"))
    pad = [None] * width
    out = {}
    for row in reader:
        if not row:
            continue  # a blank line (DictReader skipped them too)
        if len(row) < width:
            row += pad[len(row):]
        row.append(None)
        lat, lon = _float(row[lat_at]), _float(row[lon_at])
        status = row[status_at] or ("ok" if lat is not None else "not-found")
        out[row[key]] = Result(row[key], status.strip(), lat, lon, _float(row[score_at]),
                               row[type_at] or None, row[label_at] or None,
                               row[city_at] or None)
    return out


def accept(result: Result | None, min_score: float) -> tuple[bool, str]:
    """Keep a street-level answer above the score threshold; say why otherwise."""
    if result is None:
        return False, "no answer"
    if result.status != "ok" or result.latitude is None or result.longitude is None:
        return False, f"status {result.status}"
    if result.score is None or result.score < min_score:
        return False, f"score {result.score} below {min_score}"
    if result.type not in STREET_TYPES:
        # A municipality hit for a street address only says the commune was found.
        return False, f"type {result.type} is not street-level"
    return True, "ok"


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lon, lat) points, in km."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(h))
