"""A copy of what the warehouse cannot rebuild from the raw payloads: the persisted IDs
(`core.structure_ids`, `core.id_successions`) and the geocoder's answers (`core.geocodes`),
with the fetch each source's staging was made from, written beside the payloads
(raw/_registry/) after each consolidation. With the payloads it
is enough to rebuild a lost or corrupt warehouse that publishes the same IDs and points."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from warehouse.db import transaction

TABLES = ("core.structure_ids", "core.id_successions", "core.geocodes")


def export_registry(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> Path:
    """Write the tables as Parquet under raw/_registry/, each replaced atomically."""
    folder = raw_dir / "_registry"
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        target = folder / f"{table.split('.')[1]}.parquet"
        tmp = target.with_suffix(".part")
        con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO '{tmp}' (FORMAT parquet)")
        tmp.replace(target)
    export_staged_from(con, raw_dir)
    return folder


STAGED_FROM = "staged_from.json"


def export_staged_from(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> Path:
    """Write raw/_registry/staged_from.json: the fetch (content hash) each source's current
    staging was made from. A rebuild stages those, not a newer fetch that was refused (too
    few rows, a cut-off file), which would publish what the warehouse never did."""
    folder = raw_dir / "_registry"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STAGED_FROM
    tmp = target.with_suffix(".part")
    tmp.write_text(json.dumps(dict(con.execute(
        "SELECT source, sha256 FROM ops.source_state ORDER BY source").fetchall()), indent=1),
        encoding="utf-8")
    tmp.replace(target)
    return target


def staged_from(raw_dir: Path) -> dict[str, str]:
    """Source → the content hash its last consolidated staging was made from ({} when the
    registry predates it or is gone)."""
    try:
        return json.loads((raw_dir / "_registry" / STAGED_FROM).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def import_registry(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> list[str]:
    """Fill the (empty) tables from raw/_registry/; returns the tables restored."""
    folder = raw_dir / "_registry"
    restored = []
    with transaction(con):
        for table in TABLES:
            path = folder / f"{table.split('.')[1]}.parquet"
            if path.exists():
                con.execute(f"DELETE FROM {table}")
                con.execute(f"INSERT INTO {table} SELECT * FROM read_parquet(?)", [str(path)])
                restored.append(table)
    return restored
