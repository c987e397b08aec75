"""`ops.match_cache`: the scored pairs of each commune with the digest of its records, so that
a consolidation scores only the communes whose records changed (transforms/match_cache.py).
A cache, not a record: any entry is right for its digest, and dropping the table only costs
one full scoring."""

from __future__ import annotations

import json

import duckdb
import orjson
import pandas as pd

from warehouse.db import transaction

TYPES = {"commune": "VARCHAR", "digest": "VARCHAR", "pairs": "VARCHAR"}


def load(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, list]]:
    """commune → (digest, [(key a, key b, score, band, features)])."""
    rows = con.execute("SELECT commune, digest, pairs FROM ops.match_cache").fetchall()
    # orjson: a national cache is a quarter of a million pairs, read at every consolidation
    return {c: (d, [tuple(p) for p in _pairs(pairs)]) for c, d, pairs in rows}


def _pairs(text: str) -> list:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # written by json.dumps before orjson: NaN is no JSON
        return json.loads(text)


def save(con: duckdb.DuckDBPyConnection, entries: dict[str, tuple[str, list]],
         communes: set[str]) -> None:
    """Write the entries scored anew and drop the communes that no longer hold a record
    (`communes`: those that do)."""
    frame = pd.DataFrame([(c, d, orjson.dumps(pairs, option=orjson.OPT_SERIALIZE_NUMPY).decode())
                          for c, (d, pairs) in entries.items()], columns=list(TYPES))
    with transaction(con):
        con.register("fresh_entries", frame)
        try:
            con.execute("DELETE FROM ops.match_cache WHERE commune IN "
                        "(SELECT CAST(commune AS VARCHAR) FROM fresh_entries)")
            con.execute("INSERT INTO ops.match_cache SELECT CAST(commune AS VARCHAR), "
                        "CAST(digest AS VARCHAR), CAST(pairs AS VARCHAR) FROM fresh_entries")
        finally:
            con.unregister("fresh_entries")
        kept = pd.DataFrame({"commune": sorted(communes)})
        con.register("present_communes", kept)
        try:
            con.execute("DELETE FROM ops.match_cache WHERE commune NOT IN "
                        "(SELECT CAST(commune AS VARCHAR) FROM present_communes)")
        finally:
            con.unregister("present_communes")
