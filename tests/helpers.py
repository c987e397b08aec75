"""Helpers shared by the test tiers (and the benchmark scripts): paths, a read-only query on a
test warehouse, the GeoJSON contract check, record and structure makers, a warehouse loaded
with given structures, and a stand-in for the BAN's CSV endpoint."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
from werkzeug import Request, Response

from transforms.fields import RECORD
from warehouse.db import (
    CANDIDATE_TYPES,
    JUDGEMENT_TYPES,
    LINK_TYPES,
    MARTS_SQL,
    RECORD_TYPES,
    STRUCTURE_TYPES,
    connect,
    replace_table,
)
from warehouse.paths import WarehousePaths

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def query(home: Path, sql: str, params=None) -> list[tuple]:
    """Rows of a query on the test warehouse under `home`, read-only."""
    con = duckdb.connect(str(home / "siae.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def run_summary(flow, *args, **kw):
    """Run one of the project's flows and return its run summary, whatever state it ended in
    (the flows end Failed when nothing could be published)."""
    from flows.outcome import summary_of

    return summary_of(flow(*args, return_state=True, **kw))


def check_geojson(path: Path) -> int:
    """The number of features of a published GeoJSON, after the contract check of
    ../shared/tools/check_geojson.py when it is there."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if (SHARED / "tools" / "check_geojson.py").exists():
        out = subprocess.run(
            [sys.executable, str(SHARED / "tools" / "check_geojson.py"), str(path)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout
    return len(doc["features"])


def record(source: str = "a", source_id: str = "1", **kw) -> dict:
    """A staged record: every record column, None unless given (types empty)."""
    r = dict.fromkeys(RECORD)
    r.update(source=source, source_id=source_id, row_number=1, types=[])
    r.update(kw)
    return r


def structure(n, lon=4.4, lat=44.6, region="84", **kw) -> dict:
    """A golden record of core.structures numbered n."""
    r = dict.fromkeys(STRUCTURE_TYPES)
    r.update(structure_id=f"siae-{n:04d}", identity_key=f"k{n}", nom=f"Structure {n}",
             types=["ACI"], longitude=lon, latitude=lat, region=region, departement="07",
             sources=["demo"], date_maj=dt.date(2024, 1, 1), provenance="{}", geo_refused=[])
    r.update(kw)
    return r


def create_marts(con, structures: list[dict]) -> None:
    """core.structures holding these rows, the other core tables the marts read empty (the
    merged records, their links, the matcher's pairs, the judgements), then the marts."""
    replace_table(con, "core.structures", pd.DataFrame(structures, dtype=object),
                  STRUCTURE_TYPES)
    for table, types in (("core.records", RECORD_TYPES), ("core.links", LINK_TYPES),
                         ("core.match_candidates", CANDIDATE_TYPES),
                         ("core.judgements", JUDGEMENT_TYPES)):
        replace_table(con, table, pd.DataFrame(columns=list(types)), types)
    con.execute(MARTS_SQL)


def load(home, rows) -> None:
    """A warehouse under `home` whose core.structures holds these rows, marts created."""
    paths = WarehousePaths(home).ensure()
    with connect(paths.database) as con:
        create_marts(con, rows)


BASE = [structure(i) for i in range(20)] + [structure(20, lon=None, lat=None),
                                           structure(21, lon=2.35, lat=48.85, region="11")]


# --- a stand-in for the BAN's POST /search/csv/ ------------------------------------------
# It speaks its contract: a multipart form with the CSV as `data`, `columns` repeated and a
# `citycode` column name; the answer is the same rows plus result columns.

RESULT_COLUMNS = ["latitude", "longitude", "result_label", "result_score", "result_score_next",
                  "result_type", "result_id", "result_housenumber", "result_name",
                  "result_street", "result_postcode", "result_city", "result_context",
                  "result_citycode", "result_oldcitycode", "result_oldcity", "result_district",
                  "result_status"]


def answer_for(row: dict, columns: list[str], citycode_column: str,
               near: dict[str, tuple[float, float]] | None = None) -> dict:
    """A deterministic answer: `introuvable` → not-found, `vague` → municipality, `douteux`
    → score 0.4, otherwise a housenumber near a point derived from the address: within 300 m
    of the commune's centre when `near` (INSEE code → latitude, longitude) knows the row's
    commune, as the real BAN answers; else somewhere around Lyon."""
    query = " ".join(row[c] for c in columns)
    if "introuvable" in query.lower():
        return {"result_status": "not-found"}
    h = int(hashlib.sha256(query.encode()).hexdigest()[:8], 16)
    lat, lon = 45.0 + (h % 1000) / 2000, 4.0 + (h // 1000 % 1000) / 2000
    centre = (near or {}).get(row.get(citycode_column, ""))
    if centre is not None:
        lat = centre[0] + (h % 1000 - 500) * 0.000006
        lon = centre[1] + (h // 1000 % 1000 - 500) * 0.000006
    kind, score = "housenumber", 0.93
    if "vague" in query.lower():
        kind, score = "municipality", 0.9
    if "douteux" in query.lower():
        score = 0.4
    return {"latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}", "result_score": str(score),
            "result_type": kind, "result_label": query, "result_status": "ok",
            "result_citycode": row.get(citycode_column, "")}


def ban_handler(reorder: bool = False, bom: bool = False, addok: bool = False, log=None,
                near: dict[str, tuple[float, float]] | None = None):
    """A werkzeug handler; `reorder` puts the result columns first, `bom` prefixes a BOM,
    `addok` drops `result_status` as addok's CSV plugin does; `near` as in `answer_for`."""

    def handle(request: Request) -> Response:
        upload = request.files.get("data")
        columns = request.form.getlist("columns")
        citycode = request.form.get("citycode")
        if upload is None or not columns:
            return Response("data and columns are required", status=400)
        rows = list(csv.DictReader(io.StringIO(upload.read().decode("utf-8"))))
        if log is not None:
            log.append(len(rows))
        result_columns = [c for c in RESULT_COLUMNS if not (addok and c == "result_status")]
        header = list(rows[0].keys()) if rows else []
        header = result_columns + header if reorder else header + result_columns
        out = io.StringIO()
        writer = csv.DictWriter(out, header, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, **answer_for(r, columns, citycode, near)})
        text = ("\ufeff" if bom else "") + out.getvalue()
        return Response(text.encode("utf-8"), content_type="text/csv; charset=utf-8")

    return handle
