"""The publication as data products: schema, CSV, Parquet, per-région GeoJSON, change log
(the datapackage: transforms/datapackage.py). Everything here is a pure function of the
published rows, so the same rows always give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.fields import published_fields
from transforms.geocoding import distance_km
from transforms.kinds import KNOWN_KINDS

# The published fields, in order (the field table): name, Table Schema type, description.
FIELDS = tuple((f.name, f.schema_type, f.description) for f in published_fields())
FIELD_NAMES = tuple(name for name, _, _ in FIELDS)
LIST_DELIMITER = "|"
_ARROW_TYPES = {f.name: f.arrow_type for f in published_fields()}


def table_schema() -> dict:
    """The Frictionless Table Schema of the CSV and Parquet files."""
    fields = []
    for name, kind, description in FIELDS:
        f: dict = {"name": name, "type": kind, "description": description}
        if kind == "list":
            f.update(delimiter=LIST_DELIMITER, itemType="string")
        if name == "types":
            f["categories"] = list(KNOWN_KINDS)
        if name == "structure_id":
            f["constraints"] = {"required": True, "unique": True}
        if kind == "number":
            f["decimalChar"] = "."
        fields.append(f)
    return {"fields": fields, "primaryKey": ["structure_id"], "missingValues": [""]}


def _text(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "list":
        return LIST_DELIMITER.join(str(v) for v in value)
    if kind == "number":
        return f"{float(value):.6f}"
    if kind == "date":
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


# The first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = frozenset("=+-@\t\r")
# A value that is data, not a formula, even with a leading sign: a number, an E.164 phone.
_DATA = re.compile(r"[+-]?\d+(?:[.,]\d+)?|\+\d{6,15}")


def neutralise(text: str) -> str:
    """A cell a spreadsheet would run as a formula (it starts with = + - @, a tab or a
    carriage return), made inert by a leading apostrophe, as OWASP advises; numbers and
    E.164 phones stay as they are."""
    if text[:1] in FORMULA_STARTS and not _DATA.fullmatch(text):
        return "'" + text
    return text


def _column_texts(values: list, kind: str) -> list[str]:
    """[neutralise(_text(v, kind)) for v in values], a column at a time: the common values
    (text, None) are turned into cells without a call each (at 1M, two calls per cell were
    most of the CSV's 5.6 s)."""
    if kind == "string":
        return [c if (c := "" if v is None else v if type(v) is str else _text(v, kind)
                      )[:1] not in FORMULA_STARTS else neutralise(c) for v in values]
    return [c if (c := "" if v is None else _text(v, kind))[:1] not in FORMULA_STARTS
            else neutralise(c) for v in values]


def csv_bytes(rows: Iterable[Mapping[str, object]],
              reuse: Mapping[str, str] | None = None) -> bytes:
    """UTF-8, comma-separated, one row per structure, lists joined by `|`, fixed decimals;
    formula-like cells neutralised (the GeoJSON and Parquet files keep the exact values).
    `reuse`: the lines of the previous file for structures whose row is unchanged
    (`csv_lines_by_id`): written as they are. In memory; `csv_chunks` gives the same text
    a chunk of rows at a time."""
    return "".join(csv_chunks(list(rows), reuse)).encode("utf-8")


# Rows whose cells are made at once: a national file's cells, made a column at a time for
# every row, were 700 MB in the process that encodes it.
CSV_CHUNK_ROWS = 20_000


def csv_chunks(rows: Sequence[Mapping[str, object]], reuse: Mapping[str, str] | None = None,
               size: int = CSV_CHUNK_ROWS) -> Iterator[str]:
    """The text of `csv_bytes`, in pieces: the header, then the lines of `size` rows at a
    time (cells are made value by value, so the pieces join into the same text)."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(FIELD_NAMES)
    yield header.getvalue()
    for start in range(0, len(rows), size):
        yield _csv_text(rows[start:start + size], reuse or {})


def _csv_text(rows: Sequence[Mapping[str, object]], reuse: Mapping[str, str]) -> str:
    # the cells of the rows to write, made a column at a time
    fresh = [r for r in rows if r["structure_id"] not in reuse]
    columns = [_column_texts([r.get(name) for r in fresh], kind) for name, kind, _ in FIELDS]
    lines = iter(zip(*columns, strict=True)) if columns else iter(())
    # a carriage return inside a cell is not quoted by the "\n" dialect: such a row is
    # written with every cell quoted, so that no reader breaks the line there
    broken = {k for column in columns if "\r" in "".join(column)
              for k, c in enumerate(column) if "\r" in c}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    if not reuse and not broken:
        writer.writerows(lines)
        return out.getvalue()
    k = 0
    for r in rows:
        if (kept := reuse.get(r["structure_id"])) is not None:
            out.write(kept)
            continue
        (quoted if k in broken else writer).writerow(next(lines))
        k += 1
    return out.getvalue()


def csv_lines_by_id(data: bytes, ids: list[str]) -> dict[str, str]:
    """The lines (newline included) of a file written by `csv_bytes` from rows whose
    structure_ids are `ids`, in order; nothing when a cell held a line break (then lines and
    rows no longer pair up) or the file is not UTF-8."""
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return {}
    if len(lines) != len(ids) + 2 or lines[-1] != "":
        return {}
    out = {}
    for sid, line in zip(ids, lines[1:-1], strict=True):
        # structure_id is the first column: a line that does not start with it is not its
        if line.startswith((f"{sid},", f'"{sid}",')):
            out[sid] = line + "\n"
    return out


def parquet_bytes(rows: list[Mapping[str, object]]) -> bytes:
    """The same rows in Parquet, typed as the Table Schema says."""
    schema = pa.schema([pa.field(name, _ARROW_TYPES[name]) for name in FIELD_NAMES])
    # a column at a time, each list of values dropped once it is an Arrow array (every
    # column as Python lists at once was 120 MB more at 1M)
    arrays = []
    for name, kind, _ in FIELDS:
        values = ([list(v) if v is not None else None for v in (r.get(name) for r in rows)]
                  if kind == "list" else [r.get(name) for r in rows])
        arrays.append(pa.array(values, type=_ARROW_TYPES[name]))
        del values
    table = pa.Table.from_arrays(arrays, schema=schema)
    del arrays
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance in metres between two (lon, lat) points."""
    return 1000 * distance_km(a, b)


def _point(r: Mapping) -> tuple[float, float] | None:
    lon, lat = r.get("longitude"), r.get("latitude")
    return (float(lon), float(lat)) if lon is not None and lat is not None else None


def _comparable(v: object) -> object:
    # a missing value read back as NaN is None; a list read from Parquet may be an array
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return list(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def compute_changes(previous: list[Mapping] | None, current: list[Mapping],
                    move_threshold_m: float = 100.0,
                    redirects: Mapping[str, str] | None = None,
                    same: Collection[str] | None = None) -> dict:
    """What changed between two publications: added, removed, moved more than the threshold
    (with the distance), and the other fields that changed, per structure_id (sorted).
    `same`: the structure_ids whose rows are equal, when known already (`same_rows`)."""
    before = {r["structure_id"]: r for r in previous or []}
    after = {r["structure_id"]: r for r in current}
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    moved, changed = [], []
    for sid in sorted(set(before) & set(after)):
        a, b = before[sid], after[sid]
        # most rows of a release: nothing to compare field by field
        if (sid in same) if same is not None else _same(a, b):
            continue
        pa_, pb = _point(a), _point(b)
        if pa_ and pb and (d := haversine_m(pa_, pb)) > move_threshold_m:
            moved.append({"structure_id": sid, "distance_m": round(d), "from": list(pa_),
                          "to": list(pb)})
        elif (pa_ is None) != (pb is None):
            moved.append({"structure_id": sid, "distance_m": None, "from": pa_ and list(pa_),
                          "to": pb and list(pb)})
        fields = [n for n in FIELD_NAMES if n not in ("latitude", "longitude")
                  and _comparable(a.get(n)) != _comparable(b.get(n))]
        if fields:
            changed.append({"structure_id": sid, "fields": fields})
    return {
        "added": [{"structure_id": s, "nom": after[s].get("nom")} for s in added],
        "removed": [{"structure_id": s, "nom": before[s].get("nom")} for s in removed],
        "moved": moved,
        "changed": changed,
        "redirects": [{"from": k, "to": v} for k, v in sorted((redirects or {}).items())],
    }


def same_rows(previous: Iterable[Mapping], current: Iterable[Mapping]) -> set[str]:
    """The structure_ids whose row is equal, as it is, in both publications: every file
    encodes such a row as it did."""
    before = {r["structure_id"]: r for r in previous}
    return {r["structure_id"] for r in current if _same(before.get(r["structure_id"]), r)}


def _same(a: Mapping, b: Mapping) -> bool:
    """Whether two rows are equal as they are (then no field and no point differs); False
    when they cannot say (a NaN is never equal to itself, an array refuses ==)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def dumps(doc: object) -> bytes:
    """Stable, readable JSON bytes."""
    return (json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=False) + "\n").encode()
