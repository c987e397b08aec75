"""The raw layer: every fetch (`raw.fetches`) and the landed files deleted by the retention
setting (`raw.pruned`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class LandedFetch:
    """One landed payload of a successful fetch."""

    location: str
    sha256: str
    bytes: int
    file_path: str


def record_failed_fetch(con: duckdb.DuckDBPyConnection, run_id: str, source: str,
                        location: str, at: dt.datetime, error: str) -> None:
    """A fetch that failed: what was asked (never a token) and why."""
    con.execute("INSERT INTO raw.fetches (run_id, source, location, fetched_at, status, error) "
                "VALUES (?, ?, ?, ?, 'failed', ?)", [run_id, source, location, at, error])


def record_fetch(con: duckdb.DuckDBPyConnection, run_id: str, source: str, at: dt.datetime,
                 landed: list[LandedFetch], unchanged: bool) -> None:
    """The payloads of a successful fetch, and whether they match the last staging."""
    for f in landed:
        con.execute("INSERT INTO raw.fetches VALUES (?, ?, ?, ?, 'ok', ?, ?, ?, ?, NULL)",
                    [run_id, source, f.location, at, f.sha256, f.bytes, f.file_path, unchanged])


def successful_fetches(con: duckdb.DuckDBPyConnection,
                       source: str) -> list[tuple[str, str, dt.datetime, str]]:
    """(sha256, file_path, fetched_at, run_id) of the source's successful fetches."""
    return con.execute(
        "SELECT sha256, file_path, fetched_at, run_id FROM raw.fetches WHERE source = ? AND "
        "status = 'ok'", [source]).fetchall()


def landed_files(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str]]:
    """(source, run_id, sha256, file_path) of every successful fetch, oldest first."""
    return con.execute(
        "SELECT source, run_id, sha256, file_path FROM raw.fetches WHERE status = 'ok' "
        "ORDER BY fetched_at, source, file_path").fetchall()


def record_pruned(con: duckdb.DuckDBPyConnection, source: str, sha256: str, path: str,
                  at: dt.datetime, run_id: str) -> None:
    """A landed file deleted by `keep_raw`."""
    con.execute("INSERT INTO raw.pruned VALUES (?, ?, ?, ?, ?)", [source, sha256, path, at,
                                                                 run_id])
