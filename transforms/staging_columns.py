"""Staging's checks and normalisation, a column at a time.

A source repeats its communes, kinds, postcodes and dates on thousands of rows, and most of
its cells need no repair. Normalising each column once per distinct value, and looking for
mojibake once per column, costs a fraction of a pass that builds each row's dict and calls
every normaliser on it (47 µs a row, about 13 s of CPU for a national source of 277,000
rows). `stage_rows` gives each row's outcome; `transforms.staging` puts them together in
file order, since whether a source_id repeats depends on the rows before it.

A row's issues are the same, in the same order, as a row-by-row reading would give: each
check has a rank (`_RANK`), a rejected row keeps the issues ranked before its reject, and
a row's issues are sorted by rank.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from transforms.contacts import normalize_email, normalize_phone, normalize_website
from transforms.errors import InvalidValue
from transforms.fields import FIELDS, RECORD
from transforms.identifiers import normalize_siret, plain_sirets, siren_of
from transforms.kinds import parse_kinds
from transforms.places import (
    APPROXIMATE_METHODS,
    CommuneIndex,
    departement_of_postcode,
    normalize_departement,
    normalize_postcode,
)
from transforms.postes import normalize_postes
from transforms.spec import SourceSpec
from transforms.text import MAX_CELL, clean_text, looks_mojibake, repair, shorten

RECORD_COLUMNS = list(RECORD)
# Fields staging normalises or derives itself; the other mapped string fields are plain text.
_NORMALISED = {"source_id", "siret", "nom", "types", "types_candidats", "adresse", "postes",
               "complement_adresse", "code_postal", "commune", "code_insee", "departement",
               "telephone", "courriel", "site_web", "etat_administratif", "siret_signature"}
TEXT_FIELDS = tuple(f.name for f in FIELDS if f.record and f.mappable and f.type == "string"
                    and f.name not in _NORMALISED)

# The order in which a row's checks speak. A repaired text comes first (ranked by its
# field's place in the mapping, below 100); the source_id's check (a repeat: "doublon")
# falls between "siret" and "code_postal", and is made by the caller.
_RANK = {name: 100 + i for i, name in enumerate((
    "valeur_trop_longue", "nom", "types", "type_non_confirme", "type_inconnu", "siret",
    "source_id", "code_postal", "commune", "departement", "departement_incoherent",
    "latitude", "longitude", "coordonnees_incompletes", "telephone", "courriel", "site_web",
    "date_maj", "date_fermeture", "siret_signature"))}
SOURCE_ID_RANK = _RANK["source_id"]


class Issue(NamedTuple):
    """A reject ("r") or a warning ("w") of one row, as ops.rejects and ops.warnings keep it."""

    kind: str
    field: str | None
    value: object
    reason: str
    detail: str


class RowOutcome(NamedTuple):
    """One row's staging. `before`: its issues up to the source_id's check, whose last one
    is its reject when `rejected`; `after`: its warnings past that check (only when the
    row is kept); `record`: its values in RECORD_COLUMNS order (None when rejected)."""

    before: tuple[Issue, ...]
    rejected: bool
    source_id: str | None
    given_id: str | None  # the source_id as the source wrote it (None: not mapped)
    after: tuple[Issue, ...]
    record: tuple | None


class _Failed(NamedTuple):
    """A value its normaliser refused: the reason and detail of its InvalidValue."""

    reason: str
    detail: str


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


def etat(value: str, closed_on: dt.date | None) -> str | None:
    """'A' open, 'F' closed (SIRENE: F closed establishment, C ceased company; a closing date
    also means closed), None when the source does not say."""
    code = (value or "").strip().upper()[:1]
    if code in ("F", "C") or closed_on:
        return "F"
    return "A" if code == "A" else None


def row_hash(values: dict[str, str]) -> str:
    """A source_id for a row without one: a digest of its mapped values."""
    blob = json.dumps(values, sort_keys=True, ensure_ascii=False).encode()
    return "h" + hashlib.sha256(blob).hexdigest()[:16]


def _phone(value: str, departement: str | None) -> str | None:
    return normalize_phone(value, departement=departement)


# normaliser → a function giving the values it would give back unchanged, decided for a whole
# column at once (the others are still asked one by one)
_PLAIN: dict[Callable, Callable[[Iterable[str]], list[str]]] = {normalize_siret: plain_sirets}


@dataclass
class Normalisers:
    """One staging's normalisers, each with the answers it gave by value: a staging that
    stages a few rows again (a repeated source_id) asks them again for free."""

    spec: SourceSpec
    communes: CommuneIndex
    kinds: tuple[str, ...]
    answers: dict[Callable, dict] = field(default_factory=lambda: defaultdict(dict))

    def each(self, normalize: Callable, *columns: Sequence) -> list:
        """`normalize` of each row's values (one column per argument), computed once per
        distinct value; a value it refuses gives a `_Failed`."""
        known = self.answers[normalize]
        keys = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
        fresh = set(keys).difference(known)
        if (plain := _PLAIN.get(normalize)) is not None and len(columns) == 1 and fresh:
            # the values a normaliser gives back as they are, found all at once
            same = plain(fresh)
            known.update(zip(same, same, strict=True))
            fresh.difference_update(same)
        for key in fresh:
            try:
                known[key] = normalize(key) if len(columns) == 1 else normalize(*key)
            except InvalidValue as exc:
                known[key] = _Failed(exc.reason, exc.detail)
        return list(map(known.__getitem__, keys))


def stage_rows(norm: Normalisers, columns: list[str], rows: Sequence[Sequence[str]],
               numbers: Sequence[int], notes: dict[int, str]) -> list[RowOutcome]:
    """The outcome of each row (values in the order of `columns`, `numbers` their places in
    the file, `notes` what the reader knows of some): records, rejects and warnings."""
    spec, n = norm.spec, len(rows)
    issues: dict[int, list] = defaultdict(list)  # row → [(rank, Issue)]
    values = _mapped_values(spec, columns, rows, issues)

    def value(f: str, k: int):
        column = values.get(f)
        return None if column is None else column[k]

    # Rejects, in the order a row meets them: a huge cell, no name, no published kind.
    rejected: dict[int, int] = {}  # row → rank of its reject
    for f, column in values.items():
        if max(map(len, filter(None, column)), default=0) <= MAX_CELL:
            continue
        for k, v in enumerate(column):
            if k not in rejected and len(v or "") > MAX_CELL:
                rejected[k] = _add(issues, k, "valeur_trop_longue", Issue(
                    "r", f, shorten(v, 200), "valeur_trop_longue",
                    f"{len(v)} characters (at most {MAX_CELL})"))
    noms = list(map(clean_text, values.get("nom") or [None] * n))
    for k, nom in enumerate(noms):
        if not nom and k not in rejected:
            rejected[k] = _add(issues, k, "nom", Issue("r", "nom", value("nom", k),
                                                         "nom_manquant", "no name"))
    choice = norm.answers[_kinds_choice]
    published, proposed = [None] * n, [None] * n
    for k, pair in enumerate(zip(values.get("types") or [""] * n,
                                 values.get("types_candidats") or [""] * n, strict=True)):
        if k in rejected:
            continue
        if pair not in choice:
            choice[pair] = _kinds_choice(*pair, spec.lookups.get("types"), norm.kinds)
        kept, issue = choice[pair]
        if kept is None:
            if issue.reason == "type_manquant":
                issue = issue._replace(detail=notes.get(numbers[k], issue.detail))
            rejected[k] = _add(issues, k, "types", issue._replace(value=value("types", k)))
            continue
        published[k], proposed[k] = kept
        if issue is not None:
            for each in issue:
                _add(issues, k, each.reason, each._replace(
                    value=value(each.field, k)))

    alive = [k for k in range(n) if k not in rejected]
    kept_values = {f: [column[k] for k in alive] for f, column in values.items()}
    sirets = norm.each(normalize_siret, kept_values.get("siret") or [""] * len(alive))
    source_ids = list(map(clean_text, kept_values.get("source_id") or [None] * len(alive)))
    for j, k in enumerate(alive):
        if type(sirets[j]) is _Failed:
            _add(issues, k, "siret", Issue("w", "siret", value("siret", k), *sirets[j]))
        if not source_ids[j]:
            source_ids[j] = row_hash({f: column[k] for f, column in values.items()})
    records = _records(norm, values, kept_values, alive, sirets, noms, published, proposed,
                       source_ids, numbers, issues)
    given = values.get("source_id") or [None] * n
    values.clear()  # the columns, no longer needed: a national source's are 100 MB
    kept_values.clear()
    return _outcomes(n, issues, rejected, given,
                     dict(zip(alive, zip(source_ids, records, strict=True), strict=True)))


def _mapped_values(spec: SourceSpec, columns: list[str], rows: Sequence[Sequence[str]],
                   issues: dict) -> dict[str, list]:
    """Each field's values as staging reads them: the mapped column, its constant where
    empty, its lookup, its mojibake repaired (said by a warning ranked by the field)."""
    at = {c: i for i, c in enumerate(columns)}
    values = {f: [r[at[c]] for r in rows] for f, c in spec.mapping.items()}
    repaired = {}
    for rank, (f, column) in enumerate(values.items()):
        if looks_mojibake(filter(None, column)):
            fixes = {k: fixed for k, v in enumerate(column) if v and (fixed := repair(v)) != v}
            if fixes:
                repaired[f] = (rank, fixes)
    for f, constant in spec.constants.items():
        column = values.get(f)
        values[f] = [v or constant for v in column] if column is not None \
            else [constant] * len(rows)
    for f, table in spec.lookups.items():
        if f != "types" and f in values:
            values[f] = [table.get(v, v) for v in values[f]]
    for f, (rank, fixes) in repaired.items():
        column = values[f]
        for k, fixed in fixes.items():
            # mojibake ("RÃ©gie") is never published: repaired, and said
            issues[k].append((rank, Issue("w", f, column[k], "texte_repare",
                                          f"{column[k]!r} read as {fixed!r}")))
            column[k] = fixed
    return values


def _kinds_choice(types: str, candidates: str, lookup: dict | None, kinds: tuple[str, ...]):
    """What a row's kinds cells make of it: ((published, proposed), warnings or None), or
    (None, its reject)."""
    found, unknown = parse_kinds(types, lookup)
    # Kinds a source gives without tying them to this establishment (per SIREN): kept,
    # published only once another source confirms them.
    maybe, _ = parse_kinds(candidates, lookup)
    if not found and not maybe:
        if unknown:
            return None, Issue("r", "types", None, "type_inconnu",
                               f"unknown kind(s): {', '.join(unknown)}")
        return None, Issue("r", "types", None, "type_manquant", "no kind of structure")
    published = [k for k in found if k in kinds]
    proposed = [k for k in maybe if k in kinds and k not in published]
    if not published and not proposed:
        return None, Issue("r", "types", None, "type_hors_perimetre",
                           f"{', '.join(found or maybe)} not published (defaults.kinds: "
                           f"{', '.join(kinds)})")
    warnings = []
    if not published:
        warnings.append(Issue("w", "types_candidats", None, "type_non_confirme",
                              f"{', '.join(proposed)}: the company's kinds, not known to be "
                              "this establishment's; published once another source confirms "
                              "them"))
    if unknown:
        warnings.append(Issue("w", "types", None, "type_inconnu",
                              f"ignored unknown kind(s): {', '.join(unknown)}"))
    return (published, proposed), tuple(warnings) or None


def _add(issues: dict, k: int, check: str, issue: Issue) -> int:
    rank = _RANK[check]
    issues[k].append((rank, issue))
    return rank


def _records(norm: Normalisers, values: dict, kv: dict, alive: list[int], sirets: list,
             noms: list, published: list, proposed: list, source_ids: list,
             numbers: Sequence[int], issues: dict) -> list[tuple]:
    """The records of the rows not rejected (`alive`), with the warnings of their other
    fields: each column normalised at once."""
    m, communes = len(alive), norm.communes
    blank, nothing = [""] * m, [None] * m

    def given(f: str) -> list:  # the values of a field (as `values.get(f, "")` would)
        return kv.get(f) or blank

    def lenient(f: str, normalize: Callable, *more: Sequence) -> list:
        """Normalised values; a refused one is None, with a warning (the row is kept)."""
        out = norm.each(normalize, given(f), *more)
        for j, got in enumerate(out):
            if type(got) is _Failed:
                k = alive[j]
                _add(issues, k, f, Issue("w", f, values[f][k], *got))
                out[j] = None
        return out

    def warn(check: str, j: int, f: str, reason: str, detail: str) -> None:
        k = alive[j]
        _add(issues, k, check, Issue("w", f, values[f][k] if f in values else None, reason,
                                     detail))

    code_postal = lenient("code_postal", normalize_postcode)
    commune_name = norm.each(clean_text, kv.get("commune") or nothing)
    code_insee = norm.each(clean_text, kv.get("code_insee") or nothing)
    places = norm.each(communes.resolve, code_postal, commune_name, code_insee)
    for j, (place, cp, name) in enumerate(zip(places, code_postal, commune_name,
                                              strict=True)):
        if place is None and (cp or name):
            warn("commune", j, "commune", "commune_inconnue",
                 f"no commune for postcode {cp!r} and name {name!r}")
        elif place is not None and place.approximate:
            said = " ".join(filter(None, (code_insee[j], cp, name)))
            warn("commune", j, "commune", APPROXIMATE_METHODS[place.method],
                 f"{said!r} is {place.commune} ({place.code_insee}) today [{place.method}]")
    declared = lenient("departement", normalize_departement)
    departement = [p.departement if p else departement_of_postcode(cp) or d
                   for p, cp, d in zip(places, code_postal, declared, strict=True)]
    for j, (d, dep) in enumerate(zip(declared, departement, strict=True)):
        if d and dep and d != dep:
            # Usually a wrong postcode or commune in the source: worth an analyst's look.
            warn("departement_incoherent", j, "departement", "departement_incoherent",
                 f"the source says {d}, its commune or postcode is in {dep}")
    latitude = lenient("latitude", parse_coordinate)
    longitude = lenient("longitude", parse_coordinate)
    for j, (lat, lon) in enumerate(zip(latitude, longitude, strict=True)):
        if (lat is None) != (lon is None):
            warn("coordonnees_incompletes", j, "latitude", "coordonnees_incompletes",
                 "latitude or longitude missing")
            latitude[j] = longitude[j] = None
    telephone = lenient("telephone", _phone, departement)
    courriel = lenient("courriel", normalize_email)
    site_web = lenient("site_web", normalize_website)
    date_maj = lenient("date_maj", parse_date)
    date_fermeture = lenient("date_fermeture", parse_date)
    # The SIRET the ASP convention was signed with; kept to link it to the current one.
    siret_signature = lenient("siret_signature", normalize_siret)
    kept_sirets = [None if type(s) is _Failed else s for s in sirets]
    adresse = norm.each(clean_text, kv.get("adresse") or nothing)
    complement = [
        # a second line repeating the first is a known export quirk
        None if c and a and c.casefold() == a.casefold() else c
        for a, c in zip(adresse, norm.each(clean_text, kv.get("complement_adresse")
                                           or nothing), strict=True)]
    column = {
        # Mapped text fields without a normaliser of their own are kept as written, spaces
        # folded: a new text field of the field table needs nothing here.
        **{f: norm.each(clean_text, kv.get(f) or nothing) for f in TEXT_FIELDS},
        "source": [norm.spec.name] * m,
        "source_id": source_ids,
        "row_number": [numbers[k] for k in alive],
        "siret": kept_sirets,
        "siren": list(map(siren_of, kept_sirets)),
        "nom": [noms[k] for k in alive],
        "types": [list(published[k]) for k in alive],
        "types_candidats": [list(proposed[k]) for k in alive],
        "adresse": adresse,
        "complement_adresse": complement,
        "code_postal": code_postal,
        "commune": [p.commune if p else c for p, c in zip(places, commune_name, strict=True)],
        "code_insee": [p.code_insee if p else None for p in places],
        "code_arrondissement": [p.code_arrondissement if p else None for p in places],
        "departement": departement,
        "region": [p.region if p else communes.region_of(d)
                   for p, d in zip(places, departement, strict=True)],
        "commune_method": [p.method if p else None for p in places],
        "latitude": latitude,
        "longitude": longitude,
        "telephone": telephone,
        "courriel": courriel,
        "site_web": site_web,
        "date_maj": date_maj,
        "date_fermeture": date_fermeture,
        "etat_administratif": norm.each(etat, given("etat_administratif"), date_fermeture),
        "siret_signature": siret_signature,
        # a SIRET that fails the checksum or is a filler loses the SIRET, not the place
        "siret_ecarte": [clean_text(kv["siret"][j]) if type(s) is _Failed else None
                         for j, s in enumerate(sirets)],
        "postes": norm.each(normalize_postes, kv.get("postes") or nothing),
    }
    return list(zip(*(column[c] for c in RECORD_COLUMNS), strict=True))


def _outcomes(n: int, issues: dict, rejected: dict[int, int], given: list,
              kept: dict[int, tuple[str, tuple]]) -> list[RowOutcome]:
    out = []
    for k in range(n):
        found = issues.get(k)
        if k in rejected:
            last = rejected[k]
            # only what the row met before its reject: later checks never ran on it
            before = tuple(i for rank, i in sorted(found, key=_by_rank) if rank <= last)
            out.append(RowOutcome(before, True, None, given[k], (), None))
            continue
        source_id, record = kept[k]
        if not found:
            out.append(RowOutcome((), False, source_id, given[k], (), record))
            continue
        found.sort(key=_by_rank)
        out.append(RowOutcome(tuple(i for rank, i in found if rank < SOURCE_ID_RANK), False,
                              source_id, given[k],
                              tuple(i for rank, i in found if rank > SOURCE_ID_RANK), record))
    return out


def _by_rank(ranked: tuple[int, Issue]) -> int:
    return ranked[0]
