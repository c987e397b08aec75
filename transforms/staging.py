"""Staging: one source's table of strings → canonical records, rejects and warnings.

A row is rejected (kept in `ops.rejects` with its reason) when it cannot be a structure on the
map: no name, an invalid SIRET (it could duplicate another source's record), no kind, or a kind
that is not published. A field that is wrong but not essential (phone, e-mail, postcode…) is
dropped from the record with a warning, and the row is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import pandas as pd

from transforms.contacts import normalize_email, normalize_phone, normalize_website
from transforms.errors import InvalidValue
from transforms.fields import FIELDS, RECORD
from transforms.identifiers import normalize_siret, siren_of
from transforms.kinds import parse_kinds
from transforms.places import (
    APPROXIMATE_METHODS,
    CommuneIndex,
    departement_of_postcode,
    normalize_departement,
    normalize_postcode,
)
from transforms.postes import normalize_postes
from transforms.readers import Table
from transforms.spec import SourceSpec
from transforms.text import MAX_CELL, clean_text, repair, shorten

RECORD_COLUMNS = list(RECORD)
# Fields staging normalises or derives itself; the other mapped string fields are plain text.
_NORMALISED = {"source_id", "siret", "nom", "types", "types_candidats", "adresse", "postes",
               "complement_adresse", "code_postal", "commune", "code_insee", "departement",
               "telephone", "courriel", "site_web", "etat_administratif", "siret_signature"}
TEXT_FIELDS = tuple(f.name for f in FIELDS if f.record and f.mappable and f.type == "string"
                    and f.name not in _NORMALISED)
ISSUE_COLUMNS = ["source", "row_number", "field", "value", "reason", "detail", "raw"]


class StageError(ValueError):
    """The table does not fit the source's declared mapping (a mapped column disappeared)."""


@dataclass
class Staged:
    records: pd.DataFrame
    rejects: pd.DataFrame
    warnings: pd.DataFrame
    unmapped_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    reused: int = 0  # rows whose outcome was replayed from the last staging (RowMemo)


# A row's outcome: its rejects and warnings as (field, value, reason, detail), its record
# (None when rejected) and the record's source_id.
Outcome = tuple[list, list, list | None, str | None]
_ROW_NUMBER = RECORD_COLUMNS.index("row_number")
_SOURCE_ID = RECORD_COLUMNS.index("source_id")


@dataclass
class RowMemo:
    """The outcome of every row a source's staging read, by a digest of the row's values.
    Valid for one `fingerprint`: the source's mapping, the code, the communes reference, the
    published kinds and the libraries that validate values; the caller keeps it between
    stagings and drops it when the fingerprint differs."""

    fingerprint: str
    known: dict[bytes, Outcome] = field(default_factory=dict)  # from the last staging
    kept: dict[bytes, Outcome] = field(default_factory=dict)  # this staging's rows

    @staticmethod
    def key(values) -> bytes:
        """The digest of one row's values, in the file's column order."""
        text = "\x1f".join(v if type(v) is str else repr(v) for v in values)
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, key: bytes) -> Outcome | None:
        return self.known.get(key)

    def keep(self, key: bytes, outcome: Outcome) -> None:
        self.kept[key] = outcome


def _text(value: str | None) -> str | None:
    return clean_text(value)


def parse_date(value: str) -> dt.date | None:
    """ISO dates and datetimes, dd/mm/yyyy[ hh:mm:ss], and Excel serial day numbers."""
    raw = (value or "").strip()
    if not raw:
        return None
    if re.fullmatch(r"\d{5}(?:\.\d+)?", raw):  # Excel serial (days since 1899-12-30)
        return dt.date(1899, 12, 30) + dt.timedelta(days=int(float(raw)))
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?", raw)
    try:
        if m:
            return dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
    except ValueError as exc:
        raise InvalidValue("date_invalide", f"{value!r} is not a date") from exc


def parse_coordinate(value: str) -> float | None:
    """A decimal degree, with `.` or `,` as decimal mark; None when empty."""
    raw = (value or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        number = float(raw)
    except ValueError as exc:
        raise InvalidValue("coordonnees_invalides", f"{value!r} is not a number") from exc
    if not -180 <= number <= 180:
        raise InvalidValue("coordonnees_invalides", f"{value!r} is out of range")
    return number


def _etat(value: str, closed_on: dt.date | None) -> str | None:
    """'A' open, 'F' closed (SIRENE: F closed establishment, C ceased company; a closing date
    also means closed), None when the source does not say."""
    code = (value or "").strip().upper()[:1]
    if code in ("F", "C") or closed_on:
        return "F"
    return "A" if code == "A" else None


def _row_hash(values: dict[str, str]) -> str:
    blob = json.dumps(values, sort_keys=True, ensure_ascii=False).encode()
    return "h" + hashlib.sha256(blob).hexdigest()[:16]


def once_per_value(normalize: Callable) -> Callable:
    """`normalize`, run once per distinct arguments: sources repeat their communes, kinds,
    dates and postcodes on thousands of rows. An InvalidValue is raised again, anew, for
    each row that has the value."""
    done: dict[tuple, tuple[bool, object]] = {}

    def cached(*args):
        hit = done.get(args)
        if hit is None:
            try:
                hit = (True, normalize(*args))
            except InvalidValue as exc:
                hit = (False, (exc.reason, exc.detail))
            done[args] = hit
        if hit[0]:
            return hit[1]
        raise InvalidValue(*hit[1])

    return cached


class _RawJson:
    """A row as read, as the JSON its rejects and warnings keep (each value shortened):
    made on the first call, once."""

    __slots__ = ("row", "text")

    def __init__(self, row: dict):
        self.row, self.text = row, None

    def __call__(self) -> str:
        if self.text is None:
            self.text = json.dumps({k: shorten(v) for k, v in self.row.items()},
                                   ensure_ascii=False)
        return self.text


def stage_table(
    table: Table, spec: SourceSpec, communes: CommuneIndex, kinds: tuple[str, ...],
    memo: RowMemo | None = None,
) -> Staged:
    """Map, normalise and validate every row of `table` for source `spec`. With a `memo`,
    the rows it knows are replayed, and every row's outcome is kept in it."""
    columns = spec.mapping
    missing = [c for c in columns.values() if c not in table.columns]
    if missing:
        # a JSON field holding objects is read as its members' columns ("adresse.rue"):
        # say so, since the list of columns below may not reach them
        nested = [f"{m!r} holds objects, read as {', '.join(repr(c) for c in inner[:5])}"
                  for m in missing
                  for inner in [[c for c in table.columns if c.startswith(f"{m}.")]] if inner]
        raise StageError(
            f"source '{spec.name}': mapped column(s) {', '.join(repr(m) for m in missing)} "
            f"not in the file (columns: {', '.join(table.columns[:20])})"
            + "".join(f"; {n}: map one of them" for n in nested)
        )
    mapped = set(columns.values())
    unmapped = [c for c in table.columns if c not in mapped and c not in spec.ignore_columns]
    records, rejects, warnings = [], [], []
    seen_ids: dict[str, int] = {}
    types_lookup = spec.lookups.get("types")
    kinds_of = once_per_value(lambda value: parse_kinds(value, types_lookup))
    resolve = once_per_value(communes.resolve)
    normalizers = {f: once_per_value(f) for f in (normalize_postcode, normalize_departement,
                                                  parse_date, parse_coordinate)}

    def one(number: int, raw_row: dict) -> None:
        """Stage one row read: a record, or a reject; warnings either way."""
        # the row as read, for its rejects and warnings: made when the first one needs it
        # (most rows have none; making it for every row was an eighth of the staging)
        raw_json = _RawJson(raw_row)
        values = {f: raw_row.get(col, "") for f, col in columns.items()}
        repaired = {f: repair(v) for f, v in values.items() if v}
        repaired = {f: v for f, v in repaired.items() if v != values[f]}
        for f, constant in spec.constants.items():
            values[f] = values.get(f) or constant
        for f, table_ in spec.lookups.items():
            if f != "types" and values.get(f) in table_:
                values[f] = table_[values[f]]

        def reject(fld, reason, detail, raw_json=raw_json, number=number, values=values):
            rejects.append([spec.name, number, fld, values.get(fld), reason, detail,
                            raw_json()])

        def warn(fld, reason, detail, raw_json=raw_json, number=number, values=values):
            warnings.append([spec.name, number, fld, values.get(fld), reason, detail,
                             raw_json()])

        for f, fixed in repaired.items():
            # mojibake ("RÃ©gie") is never published: repaired, and said
            warn(f, "texte_repare", f"{values[f]!r} read as {fixed!r}")
            values[f] = fixed
        too_long = [f for f, v in values.items() if len(v or "") > MAX_CELL]
        if too_long:
            rejects.append([spec.name, number, too_long[0], shorten(values[too_long[0]], 200),
                            "valeur_trop_longue",
                            f"{len(values[too_long[0]])} characters (at most {MAX_CELL})",
                            raw_json()])
            return

        nom = _text(values.get("nom"))
        if not nom:
            reject("nom", "nom_manquant", "no name")
            return
        types, unknown = kinds_of(values.get("types", ""))
        # Kinds a source gives without tying them to this establishment (per SIREN): kept,
        # published only once another source confirms them.
        candidates, _ = kinds_of(values.get("types_candidats", ""))
        if not types and not candidates:
            if unknown:
                reject("types", "type_inconnu", f"unknown kind(s): {', '.join(unknown)}")
            else:
                reject("types", "type_manquant",
                       table.row_notes.get(number, "no kind of structure"))
            return
        published = [k for k in types if k in kinds]
        proposed = [k for k in candidates if k in kinds and k not in published]
        if not published and not proposed:
            reject(
                "types",
                "type_hors_perimetre",
                f"{', '.join(types or candidates)} not published (defaults.kinds: "
                f"{', '.join(kinds)})",
            )
            return
        if not published:
            warn("types_candidats", "type_non_confirme",
                 f"{', '.join(proposed)}: the company's kinds, not known to be this "
                 "establishment's; published once another source confirms them")
        if unknown:
            warn("types", "type_inconnu", f"ignored unknown kind(s): {', '.join(unknown)}")

        # A SIRET that fails the checksum or is a filler loses the SIRET, not the place: the
        # row is matched by name and address like any row without one.
        siret_set_aside = None
        try:
            siret = normalize_siret(values.get("siret", ""))
        except InvalidValue as exc:
            warn("siret", exc.reason, exc.detail)
            siret, siret_set_aside = None, _text(values.get("siret"))
        source_id = _text(values.get("source_id")) or _row_hash(values)
        if source_id in seen_ids:
            reject("source_id", "doublon", f"same source_id as row {seen_ids[source_id]}")
            return
        seen_ids[source_id] = number

        def lenient(fld, normalize, warn=warn, values=values):
            """The normalised value, or None with a warning: the row is kept."""
            try:
                return normalize(values.get(fld, ""))
            except InvalidValue as exc:
                warn(fld, exc.reason, exc.detail)
                return None

        code_postal = lenient("code_postal", normalizers[normalize_postcode])
        commune_name = _text(values.get("commune"))
        place = resolve(code_postal, commune_name, _text(values.get("code_insee")))
        if place is None and (code_postal or commune_name):
            warn("commune", "commune_inconnue",
                 f"no commune for postcode {code_postal!r} and name {commune_name!r}")
        elif place is not None and place.approximate:
            given = " ".join(filter(None, (_text(values.get("code_insee")), code_postal,
                                           commune_name)))
            warn("commune", APPROXIMATE_METHODS[place.method],
                 f"{given!r} is {place.commune} ({place.code_insee}) today "
                 f"[{place.method}]")
        declared = lenient("departement", normalizers[normalize_departement])
        departement = (place.departement if place
                       else departement_of_postcode(code_postal) or declared)
        if declared and departement and declared != departement:
            # Usually a wrong postcode or commune in the source: worth an analyst's look.
            warn("departement", "departement_incoherent",
                 f"the source says {declared}, its commune or postcode is in {departement}")

        coords = {f: lenient(f, normalizers[parse_coordinate])
                  for f in ("latitude", "longitude")}
        if (coords["latitude"] is None) != (coords["longitude"] is None):
            warn("latitude", "coordonnees_incompletes", "latitude or longitude missing")
            coords = {"latitude": None, "longitude": None}
        contact = {
            "telephone": lenient("telephone", partial(normalize_phone, departement=departement)),
            "courriel": lenient("courriel", normalize_email),
            "site_web": lenient("site_web", normalize_website),
        }
        dates = {f: lenient(f, normalizers[parse_date]) for f in ("date_maj", "date_fermeture")}
        # The SIRET the ASP convention was signed with; kept to link it to the current one.
        siret_signature = lenient("siret_signature", normalize_siret)

        adresse = _text(values.get("adresse"))
        complement = _text(values.get("complement_adresse"))
        if complement and adresse and complement.casefold() == adresse.casefold():
            complement = None  # a second line repeating the first is a known export quirk
        # Mapped text fields without a normaliser of their own are kept as written, spaces
        # folded: a new text field of the field table needs nothing here.
        record = {f: _text(values.get(f)) for f in TEXT_FIELDS}
        record |= {
            "source": spec.name,
            "source_id": source_id,
            "row_number": number,
            "siret": siret,
            "siren": siren_of(siret),
            "nom": nom,
            "types": published,
            "types_candidats": proposed,
            "adresse": adresse,
            "complement_adresse": complement,
            "code_postal": code_postal,
            "commune": place.commune if place else commune_name,
            "code_insee": place.code_insee if place else None,
            "code_arrondissement": place.code_arrondissement if place else None,
            "departement": departement,
            "region": place.region if place else communes.region_of(departement),
            "commune_method": place.method if place else None,
            **coords,
            **contact,
            **dates,
            "etat_administratif": _etat(values.get("etat_administratif", ""),
                                        dates["date_fermeture"]),
            "siret_signature": siret_signature,
            "siret_ecarte": siret_set_aside,
            "postes": normalize_postes(values.get("postes")),
        }
        records.append([record[c] for c in RECORD_COLUMNS])

    reused = 0

    def replay(hit: Outcome | None, number: int, raw_row: dict) -> bool:
        """Append a known row's outcome under its new row number; False when there is none,
        or when its source_id is now taken by an earlier row (staged afresh: a doublon)."""
        nonlocal reused
        if hit is None or (hit[3] is not None and hit[3] in seen_ids):
            return False
        issues_r, issues_w, record, source_id = hit
        if issues_r or issues_w:
            raw_json = _RawJson(raw_row)()
            rejects.extend([spec.name, number, *i, raw_json] for i in issues_r)
            warnings.extend([spec.name, number, *i, raw_json] for i in issues_w)
        if record is not None:
            seen_ids[source_id] = number
            record = list(record)
            record[_ROW_NUMBER] = number
            records.append(record)
        reused += 1
        return True

    def outcome(new_rejects: list, new_warnings: list, new_records: list) -> Outcome | None:
        if any(r[4] == "doublon" for r in new_rejects):
            return None  # depends on the rows before it
        record = new_records[0] if new_records else None
        return ([r[2:6] for r in new_rejects], [w[2:6] for w in new_warnings], record,
                record[_SOURCE_ID] if record is not None else None)

    for number, raw_row, reason, raw_text in [(n, None, r, t) for n, r, t in table.bad_rows] + [
        (n, dict(zip(table.columns, r, strict=True)), None, None)
        for n, r in zip(table.row_numbers, table.rows, strict=True)
    ]:
        if raw_row is None:
            rejects.append([spec.name, number, None, None, "ligne_illisible", reason, raw_text])
            continue
        # A row staged before, with the same mapping, code and reference, stages the same:
        # its outcome is replayed (a 1% edit of a national file re-stages 1% of it). Not a
        # row whose outcome depends on others (a repeated source_id) or on its place in the
        # file (the reader's notes).
        key = memo.key(raw_row.values()) if memo is not None and \
            number not in table.row_notes else None
        if key is not None and replay(memo.get(key), number, raw_row):
            memo.keep(key, memo.get(key))
            continue
        marks = len(rejects), len(warnings), len(records)
        one(number, raw_row)
        if key is not None:
            made = outcome(rejects[marks[0]:], warnings[marks[1]:], records[marks[2]:])
            if made is not None:
                memo.keep(key, made)
    rows_read = len(table.rows) + len(table.bad_rows)
    if len(records) + len(rejects) != rows_read:
        # every row read is a record or a reject: nothing may vanish without a word
        raise StageError(f"source '{spec.name}': {rows_read} rows read but {len(records)} "
                         f"kept and {len(rejects)} rejected")
    return Staged(
        records=pd.DataFrame(records, columns=RECORD_COLUMNS, dtype=object),
        rejects=pd.DataFrame(rejects, columns=ISSUE_COLUMNS, dtype=object),
        warnings=pd.DataFrame(warnings, columns=ISSUE_COLUMNS, dtype=object),
        unmapped_columns=unmapped,
        rows_read=rows_read,
        reused=reused,
    )
