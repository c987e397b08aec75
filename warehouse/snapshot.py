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
import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import duckdb

from warehouse.comments import apply_comments, comments_of

# Copied: the layers an analyst reads. raw.* holds the fetches' metadata (the payloads stay on
# disk); staging.* the sources' last good records.
SCHEMAS = ("raw", "staging", "core", "ops", "marts")
# Not copied: the matcher's cache (megabytes of JSON pairs that core.match_candidates holds in
# readable form).
NOT_COPIED = {("ops", "match_cache")}
# In the snapshot only: each copied table's digest, documentation and copy time, so that the
# next snapshot compares digests without reading its own tables again.
LEDGER = ("ops", "snapshot_tables")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _digests(con: duckdb.DuckDBPyConnection, database: str,
             tables: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """Each table's columns and a digest of its rows (order-independent, duplicates counted),
    in two queries: one statement per table costs more than the hashing of a small one."""
    if not tables:
        return {}
    columns: dict[tuple[str, str], list] = {}
    for schema, table, name, kind in con.execute(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = ? ORDER BY schema_name, table_name, column_index",
            [database]).fetchall():
        columns.setdefault((schema, table), []).append((name, kind))
    union = " UNION ALL ".join(
        f"SELECT {n} AS i, count(*), sum(hash(t)::HUGEINT) "
        f"FROM {database}.{schema}.{_quoted(table)} t"
        for n, (schema, table) in enumerate(tables))
    rows = {i: (count, total) for i, count, total in con.execute(union).fetchall()}
    return {t: (columns.get(t, []), rows[n]) for n, t in enumerate(tables)}


def _comments_digest(name: str, columns: list) -> str:
    texts = comments_of(name, [c for c, _ in columns])
    return hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]


def _ledger(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple]:
    """(schema, table) → (digest, comments digest, copied_at) as the snapshot recorded them
    (nothing for a snapshot written before the ledger)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = "
                       "'analysts_snapshot' AND schema_name = ? AND table_name = ?",
                       list(LEDGER)).fetchall()[0][0]:
        return {}
    rows = con.execute("SELECT schema_name, table_name, digest, comments_digest, copied_at "
                       f"FROM analysts_snapshot.{LEDGER[0]}.{LEDGER[1]}").fetchall()
    return {(sc, t): (d, c, at) for sc, t, d, c, at in rows}


def write_snapshot(con: duckdb.DuckDBPyConnection, target: Path) -> dict:
    """Write the analysts' copy of every table of the warehouse open on `con`, its marts'
    views and every comment into a new file, then rename it over `target`.

    The new file starts as a copy of the previous snapshot, and only the tables whose columns
    or rows differ are copied again (a run that changed nothing rewrites the ops tables
    only). The previous snapshot's digests are read from its ledger (`ops.snapshot_tables`),
    not recomputed; only the tables copied or whose documentation changed are commented
    again. Returns the tables, those copied, and the bytes. The previous snapshot stays in
    place when anything fails."""
    building = target.with_name(f".{target.name}.building-{os.getpid()}")
    _remove(building)
    here = con.execute("SELECT current_database()").fetchall()[0][0]
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
        "current_database() AND schema_name IN (SELECT unnest(?)) ORDER BY ALL",
        [list(SCHEMAS)]).fetchall()
    tables = [t for t in tables if t not in NOT_COPIED and t != LEDGER]
    views = con.execute(
        "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal AND "
        "database_name = current_database() AND schema_name IN (SELECT unnest(?))",
        [list(SCHEMAS)]).fetchall()
    literal = "'" + str(building).replace("'", "''") + "'"
    now = dt.datetime.now()
    copied = 0
    to_comment = {f"{schema}.{name}" for schema, name, _ in views}
    ledger_rows = []
    try:
        if target.exists():
            shutil.copyfile(target, building)
        con.execute(f"ATTACH {literal} AS analysts_snapshot")
        try:
            con.execute("BEGIN")  # one commit for every change, not one per statement
            kept = {(sc, t) for sc, t in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
                "'analysts_snapshot'").fetchall()}
            ledger = _ledger(con)
            for schema, name in con.execute(
                    "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND "
                    "database_name = 'analysts_snapshot'").fetchall():
                con.execute(f"DROP VIEW analysts_snapshot.{schema}.{_quoted(name)}")
            for schema, table in sorted(kept - set(tables) - {LEDGER}):  # gone
                con.execute(f"DROP TABLE analysts_snapshot.{schema}.{_quoted(table)}")
            for schema in SCHEMAS:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS analysts_snapshot.{schema}")
            digests = _digests(con, here, tables)
            # a snapshot from before the ledger: read its tables' digests instead
            former = _digests(con, "analysts_snapshot", sorted(
                t for t in set(tables) & kept if t not in ledger)) if kept else {}
            for schema, table in tables:
                columns, (count, total) = digests[(schema, table)]
                digest = json.dumps([columns, count, str(total)])
                documented = _comments_digest(f"{schema}.{table}", columns)
                prior = ledger.get((schema, table)) if (schema, table) in kept else None
                if prior:
                    same = prior[0] == digest
                else:
                    same = former.get((schema, table)) == (columns, (count, total))
                if not same:
                    name = f"{schema}.{_quoted(table)}"
                    con.execute(f"CREATE OR REPLACE TABLE analysts_snapshot.{name} AS "
                                f"SELECT * FROM {name}")
                    copied += 1
                if not same or not prior or prior[1] != documented:
                    to_comment.add(f"{schema}.{table}")
                ledger_rows.append([schema, table, count, digest, documented,
                                    prior[2] if same and prior else now])
            _write_ledger(con, ledger_rows)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        finally:
            con.execute("DETACH analysts_snapshot")
        with duckdb.connect(str(building)) as snap:
            _create_views(snap, views)  # over the copied tables
            snap.execute("BEGIN")  # one commit for hundreds of comments
            apply_comments(snap, only=to_comment | {".".join(LEDGER)})
            snap.execute("COMMIT")
            snap.execute("CHECKPOINT")
        os.replace(building, target)
    except BaseException:
        _remove(building)
        raise
    _sync_folder(target.parent)
    return {"tables": len(tables), "copied": copied, "bytes": target.stat().st_size,
            "path": str(target)}


def _write_ledger(con: duckdb.DuckDBPyConnection, rows: list[list]) -> None:
    name = f"analysts_snapshot.{LEDGER[0]}.{LEDGER[1]}"
    con.execute(f"CREATE OR REPLACE TABLE {name} (schema_name VARCHAR, table_name VARCHAR, "
                "row_count BIGINT, digest VARCHAR, comments_digest VARCHAR, "
                "copied_at TIMESTAMP)")
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?, ?, ?, ?)", rows)


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
