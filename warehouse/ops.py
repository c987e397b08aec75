"""The ops layer: runs and their steps (`ops.runs`), consolidations (`ops.consolidations`),
alerts (`ops.alerts`), and the health of sources and of the pipeline read from them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

import duckdb

from warehouse.db import first_row, table_exists

RUN_COLUMNS = ("run_id", "step", "source", "started_at", "ended_at", "seconds", "status",
               "rows_in", "rows_out", "rejected", "bytes", "message")


def record_steps(con: duckdb.DuckDBPyConnection, rows: Iterable[Sequence]) -> None:
    """Steps of a run (values in RUN_COLUMNS order)."""
    for row in rows:
        con.execute(f"INSERT INTO ops.runs VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                    list(row))


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, at: dt.datetime, pid: int) -> None:
    """The run's own row (step `run`), written when it starts: a run killed before its end
    still leaves a trace, `running` until the next run finds its process gone."""
    con.execute("INSERT INTO ops.runs (run_id, step, started_at, ended_at, seconds, status, "
                "message) VALUES (?, 'run', ?, ?, 0, 'running', ?)", [run_id, at, at,
                                                                     f"pid {pid}"])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, at: dt.datetime, status: str,
               message: str | None) -> None:
    """The run's own row, closed with its outcome."""
    con.execute("UPDATE ops.runs SET ended_at = ?, seconds = epoch(? - started_at), "
                "status = ?, message = ? WHERE run_id = ? AND step = 'run'",
                [at, at, status, message, run_id])


def mark_interrupted(con: duckdb.DuckDBPyConnection, alive: Callable[[int], bool]) -> list[str]:
    """Runs still `running` whose process is gone (killed): marked `interrupted`."""
    gone = []
    for run_id, message in con.execute("SELECT run_id, message FROM ops.runs WHERE step = "
                                       "'run' AND status = 'running'").fetchall():
        pid = int(message.split()[-1]) if message and message.startswith("pid ") else None
        if pid is None or not alive(pid):
            gone.append(run_id)
    if gone:
        con.execute("UPDATE ops.runs SET status = 'interrupted', message = message || "
                    "': killed before its end' WHERE step = 'run' AND run_id IN "
                    "(SELECT UNNEST(?))", [gone])
    return gone


def last_consolidation(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """(inputs hash, run_id) of the newest consolidation that wrote the core tables."""
    return first_row(con, "SELECT inputs, run_id FROM ops.consolidations "
                       "ORDER BY finished_at DESC LIMIT 1")


def record_consolidation(con: duckdb.DuckDBPyConnection, run_id: str, at: dt.datetime,
                         inputs: str) -> None:
    """A consolidation that wrote the core tables, with the hash of all it read."""
    con.execute("INSERT INTO ops.consolidations VALUES (?, ?, ?)", [run_id, at, inputs])


def reference_versions(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(name, version) of every reference the warehouse holds."""
    return [tuple(r) for r in con.execute(
        "SELECT name, version FROM ops.reference_versions ORDER BY name").fetchall()]


# --- alerts --------------------------------------------------------------------------------

def open_alerts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dt.datetime]:
    """(source, problem) → last delivery, for the problems alerted on and not recovered yet."""
    rows = con.execute(
        "SELECT source, problem, state, sent_at FROM ops.alerts WHERE delivered "
        "QUALIFY row_number() OVER (PARTITION BY source, problem ORDER BY sent_at DESC) = 1"
    ).fetchall()
    return {(source, problem): sent for source, problem, state, sent in rows if state == "open"}


def record_alerts(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Posted (or attempted) alerts: (sent_at, run_id, source, problem, state, message,
    delivered)."""
    if rows:
        con.executemany("INSERT INTO ops.alerts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


# --- health --------------------------------------------------------------------------------

def source_health(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """Per source: last success (a stage step ok or unchanged), last failure and its message,
    rows staged."""
    out: dict[str, dict] = {}
    for source, ended in con.execute(
            "SELECT source, max(ended_at) FROM ops.runs WHERE step = 'stage' AND status IN "
            "('ok', 'unchanged') GROUP BY source").fetchall():
        out.setdefault(source, {})["last_success"] = ended
    for source, ended, message in con.execute(
            "SELECT source, ended_at, message FROM ops.runs WHERE status = 'failed' AND "
            "source IS NOT NULL QUALIFY row_number() OVER (PARTITION BY source ORDER BY "
            "ended_at DESC) = 1").fetchall():
        out.setdefault(source, {}).update(last_failure=ended, failure_message=message)
    for source, rows in con.execute("SELECT source, rows_staged FROM ops.source_state"
                                    ).fetchall():
        out.setdefault(source, {})["rows"] = rows
    return out


PIPELINE_STEPS = ("consolidate", "merge", "locate", "publish", "site", "snapshot", "upload")


def pipeline_failures(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The pipeline's steps (consolidation, publication, site, analysts' snapshot) whose newest
    attempt failed: what is wrong even when every source is fine."""
    rows = con.execute(
        "SELECT step, ended_at, status, message FROM ops.runs WHERE source IS NULL AND step IN "
        "(SELECT UNNEST(?)) QUALIFY row_number() OVER (PARTITION BY CASE WHEN step IN "
        "('consolidate', 'merge', 'locate') THEN 'consolidation' ELSE step END ORDER BY "
        "ended_at DESC) = 1",
        [list(PIPELINE_STEPS)]).fetchall()
    return [{"step": step, "at": ended, "message": message}
            for step, ended, status, message in rows if status == "failed"]


def pending_review(con: duckdb.DuckDBPyConnection) -> int | None:
    """Pairs awaiting review at the last consolidation (marts.doublons_a_verifier)."""
    if not table_exists(con, "marts", "doublons_a_verifier"):
        return None
    return con.execute("SELECT count(*) FROM marts.doublons_a_verifier").fetchall()[0][0]


def pipeline_state(con: duckdb.DuckDBPyConnection) -> dict:
    """The last consolidation that wrote the core tables, the current publication and the open
    alerts."""
    out: dict = {"consolidation": None, "publication": None}
    row = first_row(con, "SELECT run_id, finished_at, inputs = 'incomplete' FROM "
                      "ops.consolidations ORDER BY finished_at DESC LIMIT 1")
    if row:
        out["consolidation"] = {"run_id": row[0], "finished_at": row[1], "incomplete": row[2]}
    row = first_row(con, "SELECT release_id, published_at, structures, features FROM "
                      "ops.publications ORDER BY published_at DESC LIMIT 1")
    if row:
        out["publication"] = dict(zip(("release_id", "published_at", "structures",
                                       "features"), row, strict=True))
    out["open_alerts"] = [{"source": source, "problem": problem, "last_alert": sent}
                          for (source, problem), sent in sorted(open_alerts(con).items())]
    return out
