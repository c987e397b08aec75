"""A stand-in for the BAN's POST /search/csv/ that speaks its contract: a multipart form with
the CSV as `data`, `columns` repeated and a `citycode` column name; the answer is the same rows
plus result columns. Used by the tests and by scripts/bench_geocoding.py."""

from __future__ import annotations

import csv
import hashlib
import io

from werkzeug import Request, Response

RESULT_COLUMNS = ["latitude", "longitude", "result_label", "result_score", "result_score_next",
                  "result_type", "result_id", "result_housenumber", "result_name",
                  "result_street", "result_postcode", "result_city", "result_context",
                  "result_citycode", "result_oldcitycode", "result_oldcity", "result_district",
                  "result_status"]


def answer_for(row: dict, columns: list[str], citycode_column: str) -> dict:
    """A deterministic answer: `introuvable` → not-found, `vague` → municipality, `douteux`
    → score 0.4, otherwise a housenumber near a point derived from the address."""
    query = " ".join(row[c] for c in columns)
    if "introuvable" in query.lower():
        return {"result_status": "not-found"}
    h = int(hashlib.sha256(query.encode()).hexdigest()[:8], 16)
    lat, lon = 45.0 + (h % 1000) / 2000, 4.0 + (h // 1000 % 1000) / 2000
    kind, score = "housenumber", 0.93
    if "vague" in query.lower():
        kind, score = "municipality", 0.9
    if "douteux" in query.lower():
        score = 0.4
    return {"latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}", "result_score": str(score),
            "result_type": kind, "result_label": query, "result_status": "ok",
            "result_citycode": row.get(citycode_column, "")}


def ban_handler(reorder: bool = False, bom: bool = False, addok: bool = False, log=None):
    """A werkzeug handler; `reorder` puts the result columns first, `bom` prefixes a BOM,
    `addok` drops `result_status` as addok's CSV plugin does."""

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
            writer.writerow({**r, **answer_for(r, columns, citycode)})
        text = ("\ufeff" if bom else "") + out.getvalue()
        return Response(text.encode("utf-8"), content_type="text/csv; charset=utf-8")

    return handle
