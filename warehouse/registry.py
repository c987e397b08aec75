"""A copy of what the warehouse cannot rebuild from the raw payloads: the persisted IDs
(`core.structure_ids`, `core.id_successions`) and the geocoder's answers (`core.geocodes`),
written beside the payloads (raw/_registry/) after each consolidation. With the payloads it
is enough to rebuild a lost or corrupt warehouse that publishes the same IDs and points."""

from __future__ import annotations

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
    return folder


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
