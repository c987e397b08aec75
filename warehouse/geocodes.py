"""The geocoding cache (`core.geocodes`): one answer per normalised address and commune
filter, asked again when it failed and is older than `retry_failed_after_days`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import duckdb
import pyarrow as pa

from transforms.geocoding import STREET_TYPES, Query, Result


def cached(con: duckdb.DuckDBPyConnection,
           keys: list[str]) -> dict[str, tuple[Result, dt.datetime]]:
    """The cached answers of these keys, with when they were obtained."""
    rows = con.execute(
        "SELECT key, status, latitude, longitude, score, type, label, result_citycode, "
        "geocoded_at FROM core.geocodes WHERE key IN (SELECT UNNEST(?))", [keys]).fetchall()
    return {r[0]: (Result(*r[:8]), r[8]) for r in rows}


def store(con: duckdb.DuckDBPyConnection, queries: Mapping[str, Query],
          results: Mapping[str, Result], now: dt.datetime) -> None:
    """Cache the answers of these queries (a row missing from the answer counts as an error,
    to be asked again later)."""
    keys = list(queries)
    asked = [queries[k] for k in keys]
    answers = [results.get(k) or Result(k, "error") for k in keys]

    def column(values, kind=None):
        return pa.array(values, kind or pa.string())

    # Arrow columns, which DuckDB reads without Python: from a frame of dicts, a national
    # run's 74 batches took 7.4 s of the flow's process, against 1.6 s
    table = pa.table({
        "key": column(keys), "adresse": column([q.adresse for q in asked]),
        "code_postal": column([q.code_postal for q in asked]),
        "commune": column([q.commune for q in asked]),
        "code_insee": column([q.code_insee for q in asked]),
        "status": column([r.status for r in answers]),
        "score": column([r.score for r in answers], pa.float64()),
        "type": column([r.type for r in answers]), "label": column([r.label for r in answers]),
        "latitude": column([r.latitude for r in answers], pa.float64()),
        "longitude": column([r.longitude for r in answers], pa.float64()),
        "result_citycode": column([r.citycode for r in answers])})
    con.register("_answers", table)
    con.execute("INSERT OR REPLACE INTO core.geocodes SELECT key, adresse, code_postal, commune, "
                "code_insee, status, score, type, label, latitude, longitude, result_citycode, "
                "CAST(? AS TIMESTAMP) FROM _answers", [now])
    con.unregister("_answers")


def prune(con: duckdb.DuckDBPyConnection, keep: Iterable[str]) -> int:
    """Delete the answers of addresses no longer used; returns how many went."""
    return con.execute("DELETE FROM core.geocodes WHERE key NOT IN (SELECT UNNEST(?))",
                       [list(keep)]).fetchall()[0][0]


def answers_due(con: duckdb.DuckDBPyConnection, due: dt.datetime, min_score: float) -> int:
    """How many cached answers were not kept and are old enough to be asked again."""
    return con.execute(
        "SELECT count(*) FROM core.geocodes WHERE geocoded_at < ? AND (status <> 'ok' OR "
        "score IS NULL OR score < ? OR type NOT IN (SELECT UNNEST(?)))",
        [due, min_score, list(STREET_TYPES)]).fetchall()[0][0]
