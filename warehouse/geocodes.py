"""The geocoding cache (`core.geocodes`): one answer per normalised address and commune
filter, asked again when it failed and is older than `retry_failed_after_days`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import duckdb
import pandas as pd

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
    frame = pd.DataFrame([
        {"key": k, "adresse": q.adresse, "code_postal": q.code_postal, "commune": q.commune,
         "code_insee": q.code_insee, "status": r.status, "score": r.score, "type": r.type,
         "label": r.label, "latitude": r.latitude, "longitude": r.longitude,
         "result_citycode": r.citycode, "geocoded_at": now}
        for k, q in queries.items()
        for r in [results.get(k) or Result(k, "error")]
    ], dtype=object)
    con.register("_answers", frame)
    con.execute("INSERT OR REPLACE INTO core.geocodes SELECT key, adresse, code_postal, commune, "
                "code_insee, status, CAST(score AS DOUBLE), type, label, "
                "CAST(latitude AS DOUBLE), CAST(longitude AS DOUBLE), result_citycode, "
                "CAST(geocoded_at AS TIMESTAMP) FROM _answers")
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
