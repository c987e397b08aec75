"""The publication in data·inclusion's language: `structures` rows of its schema v1
(the `data-inclusion-schema` package), so that a consumer of data·inclusion reads our file
unchanged.

Every value comes from a published field (the field table's `datainclusion` column names its
counterpart); what we do not know (opening hours, accessibility) stays empty, never invented.
Each row is checked with the package's own model: an optional value it refuses is emptied and
counted, a row whose required value it refuses is left out and counted, with the reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping

import orjson
import pydantic
from data_inclusion.schema.v1 import ReseauPorteur, Structure

from transforms.fields import published_fields
from transforms.publication import FORMULA_STARTS, neutralise

SOURCE = "siae-atlas"
COLUMNS = tuple(Structure.model_fields)
REQUIRED = tuple(n for n, f in Structure.model_fields.items() if f.is_required())
# Our kinds → data·inclusion's `reseaux_porteurs` values (each kind is a network there; the
# schema has no single "siae" value).
NETWORKS = {e.value.upper(): e.value for e in ReseauPorteur
            if e.value in ("aci", "ai", "ei", "etti", "eiti", "geiq", "ea", "eatt")}
# published field → data·inclusion field (the id is built, not copied)
_MAPPED = {f.name: f.datainclusion for f in published_fields()
           if f.datainclusion and f.datainclusion != "id"}


def _value(v: object) -> object:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "tolist") and not isinstance(v, str):
        return v.tolist()
    return v


def _date(v: object) -> dt.date | None:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return None


def structure_doc(row: Mapping[str, object], link_base: str = "",
                  changed_on: dt.date | None = None) -> dict:
    """One structure as a data·inclusion v1 row, not yet checked. `changed_on` (the day our
    record of it last changed) stands for `date_maj` when no source dates it."""
    doc: dict = dict.fromkeys(COLUMNS)
    doc["source"] = SOURCE
    doc["id"] = f"{SOURCE}--{row['structure_id']}"
    for ours, theirs in _MAPPED.items():
        v = row.get(ours)
        doc[theirs] = v if v is None or type(v) is str else _value(v)
    kinds = doc.get("reseaux_porteurs") or []
    doc["reseaux_porteurs"] = sorted(NETWORKS[k] for k in kinds if k in NETWORKS) or None
    doc["date_maj"] = _date(doc["date_maj"]) or changed_on
    if link_base:
        doc["lien_source"] = f"{link_base.rstrip('/')}/structures/{row['structure_id']}.html"
    return doc


def checked(doc: dict) -> tuple[dict | None, list[tuple[str, str]]]:
    """The row as the schema accepts it, and the (field, reason) of each value it refused;
    None when a required field is refused (the row cannot be published there)."""
    refused: list[tuple[str, str]] = []
    doc = dict(doc)
    for _ in range(len(COLUMNS)):
        try:
            Structure.model_validate(doc)
        except pydantic.ValidationError as exc:
            fields = {}
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "?"
                fields.setdefault(field, err["msg"])
            for field, msg in fields.items():
                refused.append((field, msg))
                if field in REQUIRED or field not in doc:
                    return None, refused
                doc[field] = None
            continue
        return doc, refused
    return None, refused


def structure_rows(rows: Iterable[Mapping[str, object]], link_base: str = "",
                   changed_on: Mapping[str, dt.date] | None = None) -> tuple[list[dict], dict]:
    """The data·inclusion rows of the published structures (sorted by id) and a report: rows
    written, rows left out and values emptied, by field and reason."""
    out, left_out, emptied = [], Counter(), Counter()
    for row in rows:
        doc, _ = _counted(row, link_base, (changed_on or {}).get(row["structure_id"]),
                          left_out, emptied)
        if doc is not None:
            out.append(doc)
    out.sort(key=lambda d: d["id"])
    return out, {"structures": len(out), "left_out": dict(sorted(left_out.items())),
                 "emptied": dict(sorted(emptied.items()))}


def _counted(row: Mapping[str, object], link_base: str, changed_on: dt.date | None,
             left_out: Counter, emptied: Counter) -> tuple[dict | None, bool]:
    """A row's checked document (None: left out) and whether no value was refused, its
    refusals counted in `left_out` or `emptied`."""
    doc, refused = checked(structure_doc(row, link_base, changed_on))
    if doc is None:
        field, msg = refused[-1]
        left_out[f"{field}: {msg}"] += 1
        return None, False
    for field, msg in refused:
        emptied[f"{field}: {msg}"] += 1
    return doc, not refused


def written_date(row: Mapping[str, object], changed_on: dt.date | None) -> str | None:
    """The date_maj a row is written with (ISO), as `structure_doc` makes it."""
    day = _date(_value(row.get(_DATE_FIELD))) if _DATE_FIELD else None
    day = day or changed_on
    return day.isoformat() if day else None


_DATE_FIELD = next((ours for ours, theirs in _MAPPED.items() if theirs == "date_maj"), None)


class Export:
    """The data·inclusion export a row at a time, for writers that stream it: `lines(row)`
    gives a row's (JSON line, CSV line), or None when the row is left out; `report()` and
    `clean` (as `export_files` returns them) once every row is in. The lines go out in
    structure_id order (the documents' ids share one prefix): feed the rows sorted."""

    def __init__(self, link_base: str = "", changed_on: Mapping[str, dt.date] | None = None,
                 reuse: Mapping[str, tuple[str, str, str | None]] | None = None):
        self.link_base = link_base
        self.changed_on, self.reuse = changed_on or {}, reuse or {}
        self.csv_line = CsvLine()
        self.written = 0
        self.left_out: Counter = Counter()
        self.emptied: Counter = Counter()
        self.clean: dict[str, str | None] = {}

    def lines(self, row: Mapping[str, object]) -> tuple[str, str] | None:
        """The row's JSON and CSV lines (the previous export's when its row is unchanged
        and dated the same), or None when the schema refuses a required value."""
        sid = row["structure_id"]
        day = self.changed_on.get(sid)
        kept = self.reuse.get(sid)
        if kept is not None and kept[2] == (date := written_date(row, day)):
            self.clean[sid] = date
            self.written += 1
            return kept[0], kept[1]
        doc, whole = _counted(row, self.link_base, day, self.left_out, self.emptied)
        if doc is None:
            return None
        if whole:
            self.clean[sid] = written_date(row, day)
        self.written += 1
        return _doc_line(doc), self.csv_line(_cells(doc))

    def report(self) -> dict:
        """Rows written, rows left out and values emptied, by field and reason."""
        return {"structures": self.written, "left_out": dict(sorted(self.left_out.items())),
                "emptied": dict(sorted(self.emptied.items()))}


# How the files frame their lines: structures.json is a JSON array, one document per line;
# structures.csv its header, then its lines.
JSON_HEAD, JSON_SEPARATOR, JSON_TAIL, JSON_EMPTY = "[\n", ",\n", "\n]\n", "[]\n"
CSV_HEAD = ",".join(COLUMNS) + "\n"


def export_files(rows: Iterable[Mapping[str, object]], link_base: str = "",
                 changed_on: Mapping[str, dt.date] | None = None,
                 reuse: Mapping[str, tuple[str, str, str | None]] | None = None,
                 ) -> tuple[bytes, bytes, dict, dict[str, str | None]]:
    """structures.json (a JSON array of schema v1 rows, one per line: diffable),
    structures.csv (the same rows, `reseaux_porteurs` as a JSON list, formula-like cells
    neutralised), the report of `structure_rows`, and the rows the next export may take as
    they are: structure_id → date_maj, for the rows written without a refusal. `reuse`:
    structure_id → (JSON line, CSV line, date_maj) of the previous
    export, for rows whose published row is unchanged: taken when the date is the same.
    In memory; `Export` gives the same lines one row at a time."""
    export = Export(link_base, changed_on, reuse)
    items: list[tuple[str, str, str]] = []  # structure_id, JSON line, CSV line
    for row in rows:
        if (pair := export.lines(row)) is not None:
            items.append((row["structure_id"], *pair))
    items.sort(key=lambda item: item[0])
    json_data = (JSON_HEAD + JSON_SEPARATOR.join(j for _, j, _ in items) + JSON_TAIL
                 if items else JSON_EMPTY)
    csv_data = CSV_HEAD + "".join(c for _, _, c in items)
    return json_data.encode("utf-8"), csv_data.encode("utf-8"), export.report(), export.clean


_PREFIX = f'{{"source":"{SOURCE}","id":"{SOURCE}--'


def previous_lines(json_data: bytes, csv_data: bytes) -> dict[str, tuple[str, str]]:
    """structure_id → (JSON line, CSV line) of an export written by `export_files`; nothing
    when its CSV lines do not pair with its JSON lines (a cell held a line break)."""
    try:
        text, table = json_data.decode("utf-8"), csv_data.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    if not text.startswith("[\n") or not text.endswith("\n]\n"):
        return {}
    docs = text[2:-3].split(",\n")  # a JSON line never holds a raw line break
    lines = table.split("\n")
    if len(lines) != len(docs) + 2 or lines[-1] != "":
        return {}
    out = {}
    for doc, line in zip(docs, lines[1:-1], strict=True):
        end = doc.find('"', len(_PREFIX))
        sid = doc[len(_PREFIX):end] if doc.startswith(_PREFIX) and end > 0 else None
        if sid and "\\" not in sid and line.startswith(
                (f"{SOURCE},{SOURCE}--{sid},", f'"{SOURCE}","{SOURCE}--{sid}",')):
            out[sid] = (doc, line + "\n")
    return out


def _json_value(v: object) -> object:
    return v.isoformat() if isinstance(v, dt.date) else v


def _doc_line(doc: dict) -> str:
    # orjson writes dates as isoformat() does, and everything else as `json` (numbers below
    # 1e-4 aside: 1e-6 for 1e-06), in a third of the time; `json` for what it refuses
    try:
        return orjson.dumps({k: doc[k] for k in COLUMNS}).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps({k: _json_value(doc[k]) for k in COLUMNS}, ensure_ascii=False,
                          separators=(",", ":"))


class CsvLine:
    """One CSV line of cells at a time, through one buffer and two writers (a new buffer
    and writer per row were a third of the export's time)."""

    def __init__(self):
        self.out = io.StringIO()
        self.minimal = csv.writer(self.out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        # a row holding a carriage return is written with every cell quoted (as the
        # publication's own CSV): the "\n" dialect leaves it bare, and readers break the line
        self.quoted = csv.writer(self.out, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def __call__(self, cells: list[str]) -> str:
        self.out.seek(0)
        self.out.truncate()
        (self.quoted if "\r" in "".join(cells) else self.minimal).writerow(cells)
        return self.out.getvalue()


def _cells(doc: dict) -> list[str]:
    cells = []
    for k in COLUMNS:
        v = doc[k]
        if v is None:
            cells.append("")
        elif type(v) is str:
            cells.append(v if v[:1] not in FORMULA_STARTS else neutralise(v))
        elif isinstance(v, list):
            cells.append(json.dumps(v))
        elif isinstance(v, float):
            cells.append(f"{v:.6f}")
        else:
            cells.append(neutralise(str(_json_value(v))))
    return cells


def table_schema() -> dict:
    """The Frictionless Table Schema of structures.csv."""
    fields = []
    for name, f in Structure.model_fields.items():
        kind = {"longitude": "number", "latitude": "number", "date_maj": "date",
                "reseaux_porteurs": "array"}.get(name, "string")
        field: dict = {"name": name, "type": kind,
                       "description": (f.description or f.title or name).split("\n")[0][:300]}
        if name in REQUIRED:
            field["constraints"] = {"required": True}
        if name == "id":
            field["constraints"] = {"required": True, "unique": True}
        fields.append(field)
    return {"fields": fields, "primaryKey": ["id"], "missingValues": [""]}
