"""The analysts' snapshot: a separate DuckDB file with the warehouse's tables, its marts and
their comments, written after each consolidation and swapped in by a rename.

DuckDB lets one process write a file while nobody else holds it, so an analyst's open session
on the pipeline's own file would stop the pipeline, and the pipeline's writes would break the
analyst's reads. Analysts open the snapshot instead: the pipeline never opens it, a session
that is open during a swap keeps reading the version it opened (its file stays alive until it
closes), and a new session reads the newest one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import duckdb

from warehouse.comments import apply_comments

# Copied: the layers an analyst reads. raw.* holds the fetches' metadata (the payloads stay on
# disk); staging.* the sources' last good records.
SCHEMAS = ("raw", "staging", "core", "ops", "marts")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def write_snapshot(con: duckdb.DuckDBPyConnection, target: Path) -> dict:
    """Copy every table of the warehouse open on `con` into a new file, recreate the marts'
    views and every comment there, then rename it over `target`. Returns the tables and
    bytes written. The previous snapshot stays in place when anything fails."""
    building = target.with_name(f".{target.name}.building-{os.getpid()}")
    _remove(building)
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
        "current_database() AND schema_name IN (SELECT unnest(?)) ORDER BY ALL",
        [list(SCHEMAS)]).fetchall()
    views = con.execute(
        "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal AND "
        "database_name = current_database() AND schema_name IN (SELECT unnest(?))",
        [list(SCHEMAS)]).fetchall()
    literal = "'" + str(building).replace("'", "''") + "'"
    try:
        con.execute(f"ATTACH {literal} AS analysts_snapshot")
        try:
            for schema in SCHEMAS:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS analysts_snapshot.{schema}")
            for schema, table in tables:
                name = f"{schema}.{_quoted(table)}"
                con.execute(f"CREATE TABLE analysts_snapshot.{name} AS SELECT * FROM {name}")
        finally:
            con.execute("DETACH analysts_snapshot")
        with duckdb.connect(str(building)) as snap:
            _create_views(snap, views)  # over the copied tables
            apply_comments(snap)
            snap.execute("CHECKPOINT")
        os.replace(building, target)
    except BaseException:
        _remove(building)
        raise
    _sync_folder(target.parent)
    return {"tables": len(tables), "bytes": target.stat().st_size, "path": str(target)}


def _create_views(con: duckdb.DuckDBPyConnection, views: list[tuple]) -> None:
    # A view may read another: create in passes until every one exists.
    pending = list(views)
    while pending:
        failed = []
        for schema, name, sql in pending:
            try:
                con.execute(sql)
            except duckdb.CatalogException:
                failed.append((schema, name, sql))
        if len(failed) == len(pending):
            raise RuntimeError("views that cannot be created in the snapshot: "
                               + ", ".join(f"{s}.{n}" for s, n, _ in failed))
        pending = failed


def _sync_folder(folder: Path) -> None:
    # the rename itself survives a power cut
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotQueryError(RuntimeError):
    """The query failed on the snapshot (DuckDB's message, first line)."""


def query_snapshot(path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one query on the snapshot, read-only: its column names and rows (none for a
    statement that returns nothing)."""
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            result = con.execute(sql)
            if result.description is None:
                return [], []
            return [d[0] for d in result.description], result.fetchall()
        except duckdb.Error as exc:
            raise SnapshotQueryError(str(exc).splitlines()[0]) from exc
