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
    if not keys:
        return
    answers = [results.get(k) or Result(k, "error") for k in keys]
    # Arrow columns, which DuckDB reads without Python: from a frame of dicts, a national
    # run's 74 batches took 7.4 s of the flow's process. Queries and answers are tuples,
    # turned into columns by zip (an attribute read per cell took 1.3 s more).
    _, adresse, code_postal, commune, code_insee = zip(*(queries[k] for k in keys), strict=True)
    _, status, latitude, longitude, score, kind, label, citycode = zip(*answers, strict=True)
    text, number = pa.string(), pa.float64()
    table = pa.table({
        "key": pa.array(keys, text), "adresse": pa.array(adresse, text),
        "code_postal": pa.array(code_postal, text), "commune": pa.array(commune, text),
        "code_insee": pa.array(code_insee, text), "status": pa.array(status, text),
        "score": pa.array(score, number), "type": pa.array(kind, text),
        "label": pa.array(label, text), "latitude": pa.array(latitude, number),
        "longitude": pa.array(longitude, number),
        "result_citycode": pa.array(citycode, text)})
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
