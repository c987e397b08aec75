"""The analysts' snapshot: a separate DuckDB file with the warehouse's tables, its marts and
their comments (a copy of the warehouse's file), written after each consolidation and swapped
in by a rename.

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
# Each table's digest, documentation and the time of the snapshot that first held its rows:
# written into the snapshot, and into the warehouse once the snapshot is in place, where the
# next snapshot compares digests (the pipeline never opens the analysts' file).
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
    """(schema, table) → (digest, comments digest, copied_at) of the snapshot in place, as
    the warehouse open on `con` keeps them (nothing before the first snapshot)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = "
                       "current_database() AND schema_name = ? AND table_name = ?",
                       list(LEDGER)).fetchall()[0][0]:
        return {}
    rows = con.execute("SELECT schema_name, table_name, digest, comments_digest, copied_at "
                       f"FROM {LEDGER[0]}.{LEDGER[1]}").fetchall()
    return {(sc, t): (d, c, at) for sc, t, d, c, at in rows}


def _database_file(con: duckdb.DuckDBPyConnection) -> Path:
    path = con.execute("SELECT path FROM duckdb_databases() "
                       "WHERE database_name = current_database()").fetchall()[0][0]
    if not path or path == ":memory:":
        raise ValueError("the analysts' snapshot copies a warehouse file: this connection "
                         "is to a database in memory")
    return Path(path)


def write_snapshot(con: duckdb.DuckDBPyConnection, target: Path) -> dict:
    """Write the analysts' copy of the warehouse open on `con` (its tables, its marts' views
    and every comment) into a new file, then rename it over `target`.

    The new file is a copy of the warehouse's file, made after a checkpoint, less the tables
    an analyst does not read (NOT_COPIED) and any schema beyond SCHEMAS. Copying the file
    costs what reading it does; copying table by table cost DuckDB's writing of every table
    that changed (at a million records, 9 s of an edited run's 11). Its ledger
    (`ops.snapshot_tables`) gives each table's rows, digest and the time it last changed,
    compared with the previous snapshot's ledger that the warehouse keeps. `con` must have
    no transaction open; a commit that meets the copy gets the file copied again
    (`_copy_checkpointed`). Returns the tables, those that changed, and the bytes. The
    previous snapshot stays in place when anything fails."""
    source = _database_file(con)
    building = target.with_name(f".{target.name}.building-{os.getpid()}")
    _remove(building)
    here = con.execute("SELECT current_database()").fetchall()[0][0]
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
        "current_database() AND schema_name IN (SELECT unnest(?)) ORDER BY ALL",
        [list(SCHEMAS)]).fetchall()
    tables = [t for t in tables if t not in NOT_COPIED and t != LEDGER]
    digests = _digests(con, here, tables)
    ledger = _ledger(con) if target.exists() else {}
    now = dt.datetime.now()
    changed = 0
    ledger_rows = []
    for schema, table in tables:
        columns, (count, total) = digests[(schema, table)]
        digest = json.dumps([columns, count, str(total)])
        documented = _comments_digest(f"{schema}.{table}", columns)
        prior = ledger.get((schema, table))
        same = prior is not None and prior[0] == digest
        changed += not same
        ledger_rows.append([schema, table, count, digest, documented,
                            prior[2] if same else now])
    try:
        _copy_checkpointed(con, source, building)
        with duckdb.connect(str(building)) as snap:
            snap.execute("BEGIN")  # one commit for every change
            _leave_out(snap)
            _write_ledger(snap, ledger_rows)
            apply_comments(snap)  # the ledger's; the copied ones are in place
            snap.execute("COMMIT")
            snap.execute("CHECKPOINT")
        os.replace(building, target)
    except BaseException:
        _remove(building)
        raise
    _sync_folder(target.parent)
    con.execute("BEGIN")
    _write_ledger(con, ledger_rows)  # the next snapshot's "before"
    apply_comments(con, only={".".join(LEDGER)})
    con.execute("COMMIT")
    return {"tables": len(tables), "copied": changed, "bytes": target.stat().st_size,
            "path": str(target)}


class SnapshotCopyError(RuntimeError):
    """The warehouse's file kept changing while it was copied."""


def _state(path: Path) -> tuple:
    wal = path.with_name(path.name + ".wal")
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size, wal.exists() and wal.stat().st_size > 0


def _copy_checkpointed(con: duckdb.DuckDBPyConnection, source: Path, target: Path,
                       attempts: int = 3) -> None:
    """Copy the warehouse's file once a checkpoint has put every committed change in it.
    A commit during the copy (another thread of this process: other processes cannot write
    the file) shows as a WAL or a changed file: copied again, at most `attempts` times."""
    for _ in range(attempts):
        con.execute("CHECKPOINT")
        before = _state(source)
        shutil.copyfile(source, target)
        if not before[2] and _state(source) == before:
            return
    raise SnapshotCopyError(f"{source} changed during each of {attempts} copies: the "
                            "previous snapshot is kept")


def _leave_out(con: duckdb.DuckDBPyConnection) -> None:
    """Drop from the copy what the snapshot does not hold: NOT_COPIED, and the tables and
    views of any schema beyond SCHEMAS."""
    here = "database_name = current_database() AND NOT internal"
    for schema, name in con.execute(
            f"SELECT schema_name, view_name FROM duckdb_views() WHERE {here} "
            "AND schema_name NOT IN (SELECT unnest(?))", [list(SCHEMAS)]).fetchall():
        con.execute(f"DROP VIEW {_quoted(schema)}.{_quoted(name)}")
    for schema, name in con.execute(
            f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {here}").fetchall():
        if schema not in SCHEMAS or (schema, name) in NOT_COPIED:
            con.execute(f"DROP TABLE {_quoted(schema)}.{_quoted(name)}")


def _write_ledger(con: duckdb.DuckDBPyConnection, rows: list[list]) -> None:
    name = f"{LEDGER[0]}.{LEDGER[1]}"
    con.execute(f"CREATE OR REPLACE TABLE {name} (schema_name VARCHAR, table_name VARCHAR, "
                "row_count BIGINT, digest VARCHAR, comments_digest VARCHAR, "
                "copied_at TIMESTAMP)")
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?, ?, ?, ?)", rows)


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
