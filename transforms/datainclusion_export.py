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
from transforms.publication import neutralise

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
        doc[theirs] = _value(row.get(ours))
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
        doc, refused = checked(structure_doc(row, link_base,
                                             (changed_on or {}).get(row["structure_id"])))
        if doc is None:
            field, msg = refused[-1]
            left_out[f"{field}: {msg}"] += 1
            continue
        for field, msg in refused:
            emptied[f"{field}: {msg}"] += 1
        out.append(doc)
    out.sort(key=lambda d: d["id"])
    return out, {"structures": len(out), "left_out": dict(sorted(left_out.items())),
                 "emptied": dict(sorted(emptied.items()))}


def _json_value(v: object) -> object:
    return v.isoformat() if isinstance(v, dt.date) else v


def json_bytes(docs: list[dict]) -> bytes:
    """structures.json: a JSON array of schema v1 rows, one per line (diffable)."""
    lines = ",\n".join(_doc_line(d) for d in docs)
    return ("[\n" + lines + "\n]\n" if docs else "[]\n").encode("utf-8")


def _doc_line(doc: dict) -> str:
    # orjson writes dates as isoformat() does, and everything else as `json` (numbers below
    # 1e-4 aside: 1e-6 for 1e-06), in a third of the time; `json` for what it refuses
    try:
        return orjson.dumps({k: doc[k] for k in COLUMNS}).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps({k: _json_value(doc[k]) for k in COLUMNS}, ensure_ascii=False,
                          separators=(",", ":"))


def csv_bytes(docs: list[dict]) -> bytes:
    """structures.csv: the same rows, `reseaux_porteurs` as a JSON list, formula-like cells
    neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for d in docs:
        cells = []
        for k in COLUMNS:
            v = d[k]
            if v is None:
                cells.append("")
            elif isinstance(v, list):
                cells.append(json.dumps(v))
            elif isinstance(v, float):
                cells.append(f"{v:.6f}")
            else:
                cells.append(neutralise(str(_json_value(v))))
        writer.writerow(cells)
    return out.getvalue().encode("utf-8")


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
