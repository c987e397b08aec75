"""The staging layer: one relation per source (`staging.<source>`), the state of its last good
staging (`ops.source_state`), and the rows refused or fields dropped (`ops.rejects`,
`ops.warnings`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd
import pyarrow as pa

from warehouse.db import (
    ISSUE_TYPES,
    RECORD_TYPES,
    first_row,
    frame_of_arrow,
    insert_rows,
    replace_table,
    transaction,
)


@dataclass(frozen=True)
class SourceState:
    """What produced a source's current staging."""

    source: str
    sha256: str
    spec_fingerprint: str
    staged_at: dt.datetime
    run_id: str
    rows_read: int | None
    rows_staged: int | None
    rejects: int | None
    warnings: int | None
    unmapped_columns: list[str] | None


def staged_sources(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The sources that have a staging relation."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'"
    ).fetchall()}


def source_state(con: duckdb.DuckDBPyConnection, source: str) -> SourceState | None:
    """The state of the source's last good staging, if it has one."""
    row = first_row(con, "SELECT * FROM ops.source_state WHERE source = ?", [source])
    return SourceState(*row) if row else None


def source_states(con: duckdb.DuckDBPyConnection) -> list[SourceState]:
    """Every source's last good staging, by name."""
    return [SourceState(*r) for r in con.execute(
        "SELECT * FROM ops.source_state ORDER BY source").fetchall()]


def record_issues(con: duckdb.DuckDBPyConnection, rejects: pd.DataFrame,
                  warnings: pd.DataFrame, run_id: str, sha256: str) -> None:
    """Rows refused and fields dropped by a staging, kept even when the source then fails:
    they say why."""
    with transaction(con):
        for table, frame in (("ops.rejects", rejects), ("ops.warnings", warnings)):
            insert_rows(con, table, frame, ISSUE_TYPES, run_id=run_id, sha256=sha256)


def replace_staging(con: duckdb.DuckDBPyConnection, state: SourceState,
                    records: pd.DataFrame) -> None:
    """Replace the source's staging and its state in one transaction: if anything fails, the
    previous staging stays."""
    with transaction(con):
        replace_table(con, f"staging.{state.source}", records, RECORD_TYPES)
        con.execute(
            "INSERT OR REPLACE INTO ops.source_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [state.source, state.sha256, state.spec_fingerprint, state.staged_at, state.run_id,
             state.rows_read, state.rows_staged, state.rejects, state.warnings,
             state.unmapped_columns])


def staged_records(con: duckdb.DuckDBPyConnection, names: list[str],
                   digests: bool = False) -> pd.DataFrame:
    """The union of the named sources' stagings, in the record columns, sorted by source and
    source_id (a staging kept from an older schema lacks the newer columns: NULL then).
    `digests`: plus a `row_digest` column, DuckDB's hash of each whole record."""
    return frame_of_arrow(staged_table(con, names, digests))


def staged_table(con: duckdb.DuckDBPyConnection, names: list[str],
                 digests: bool = False) -> pa.Table:
    """`staged_records` as an Arrow table."""
    return con.sql(_records_sql(con, names, digests)).to_arrow_table()


def _records_sql(con: duckdb.DuckDBPyConnection, names: list[str], digests: bool) -> str:
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM staging.{n}" for n in names)
    present = set()
    for n in names:
        present |= {c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'staging' "
            "AND table_name = ?", [n]).fetchall()}
    columns = ", ".join(
        f'CAST("{c}" AS {t}) AS "{c}"' if c in present else f'CAST(NULL AS {t}) AS "{c}"'
        for c, t in RECORD_TYPES.items())
    digest = ", hash(r) AS row_digest" if digests else ""
    return (f"SELECT * REPLACE (coalesce(types, []) AS types){digest} "
            f"FROM (SELECT {columns} FROM ({union})) r ORDER BY source, source_id")


@dataclass(frozen=True)
class StagedRecords:
    """The staged records a consolidation merged, by reference: which stagings they were
    (each source's run and time) and how many. `copy_records` writes core.records from them
    in DuckDB, so the flow does not hold them through geocode and locate (at 1M: 300 MB)."""

    names: tuple[str, ...]
    versions: tuple[tuple, ...]  # (source, run_id, staged_at) of each staging read
    rows: int

    def __len__(self) -> int:
        return self.rows


class StagingChanged(RuntimeError):
    """A source was staged again while a consolidation ran: core.records would not hold the
    records it merged."""


def staged_versions(con: duckdb.DuckDBPyConnection, names: list[str]) -> tuple[tuple, ...]:
    """(source, run_id, staged_at) of the named sources' current stagings."""
    return tuple(tuple(r) for r in con.execute(
        "SELECT source, run_id, staged_at FROM ops.source_state "
        "WHERE list_contains(?, source) ORDER BY source", [list(names)]).fetchall())


def copy_records(con: duckdb.DuckDBPyConnection, table: str, staged: StagedRecords) -> None:
    """INSERT into `table` the records `staged` names, as `staged_records` reads them.
    Raises StagingChanged, writing nothing, when a source was staged again since (another
    process ingested it meanwhile)."""
    now = staged_versions(con, list(staged.names))
    if now != staged.versions:
        changed = sorted({v[0] for v in set(now) ^ set(staged.versions)})
        raise StagingChanged(
            f"the staging of {', '.join(changed)} changed during this consolidation (an "
            "ingest ran meanwhile): nothing written; the next run consolidates it")
    con.execute(f"INSERT INTO {table} BY NAME "
                f"{_records_sql(con, list(staged.names), digests=False)}")


def run_rejects(con: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple[str, str, str]]:
    """(source, reason, raw row as JSON) of the rows a run refused."""
    return con.execute("SELECT source, reason, CAST(raw AS VARCHAR) FROM ops.rejects "
                       "WHERE run_id = ? ORDER BY source, row_number", [run_id]).fetchall()
