"""A run's openings of the warehouse share one DuckDB instance (warehouse/db.py,
`shared_instance`): opened once, released when idle or at the end, never stale."""

import os
import subprocess
import sys
import time

import duckdb
import pytest

import warehouse.db as db
from warehouse.db import connect, shared_instance


def _opened(path, monkeypatch) -> list:
    """Count the real openings of the file."""
    seen = []
    real = db._open

    def counting(p, read_only, wait_seconds):
        seen.append(read_only)
        return real(p, read_only, wait_seconds)

    monkeypatch.setattr(db, "_open", counting)
    return seen


def _other_process_opens(path) -> bool:
    # another process, as a source's own schedule would be: read-write, no waiting
    code = ("import duckdb, sys\n"
            "try:\n"
            f"    duckdb.connect({str(path)!r}).close()\n"
            "except duckdb.IOException:\n"
            "    sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_the_openings_of_a_run_open_the_file_once(tmp_path, monkeypatch):
    path = tmp_path / "siae.duckdb"
    opened = _opened(path, monkeypatch)
    with shared_instance():
        with connect(path) as con:
            con.execute("CREATE TABLE ops.t AS SELECT 1 AS x")
        for _ in range(5):
            with connect(path) as con:
                con.execute("INSERT INTO ops.t VALUES (2)")
        with connect(path, read_only=True) as con:
            assert con.execute("SELECT count(*) FROM ops.t").fetchall() == [(6,)]
    assert opened == [False]


def test_outside_a_run_each_opening_opens_the_file(tmp_path, monkeypatch):
    path = tmp_path / "siae.duckdb"
    opened = _opened(path, monkeypatch)
    for _ in range(3):
        with connect(path):
            pass
    assert opened == [False, False, False]


def test_the_file_is_released_at_the_end_of_the_run(tmp_path):
    path = tmp_path / "siae.duckdb"
    with shared_instance():
        with connect(path) as con:
            con.execute("CREATE TABLE ops.t AS SELECT 1 AS x")
        assert not _other_process_opens(path)  # kept open between two steps
    assert _other_process_opens(path)
    with duckdb.connect(str(path), read_only=True) as con:  # written through, checkpointed
        assert con.execute("SELECT x FROM ops.t").fetchall() == [(1,)]


def test_an_idle_instance_is_released_for_other_processes(tmp_path, monkeypatch):
    # a long step without the warehouse (a download, geocoding requests) holds no lock
    monkeypatch.setattr(db, "IDLE_SECONDS", 0.2)
    path = tmp_path / "siae.duckdb"
    with shared_instance():
        with connect(path):
            pass
        deadline = time.monotonic() + 10
        while db._instances and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _other_process_opens(path)
        with connect(path) as con:  # opened again for the next step
            assert con.execute("SELECT 1").fetchall() == [(1,)]


def test_an_instance_in_use_is_kept_however_long(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "IDLE_SECONDS", 0.05)
    path = tmp_path / "siae.duckdb"
    with shared_instance(), connect(path) as con:
        time.sleep(0.3)
        con.execute("CREATE TABLE ops.t AS SELECT 1 AS x")
        with connect(path) as other:  # a nested opening: the same instance
            assert other.execute("SELECT x FROM ops.t").fetchall() == [(1,)]


def test_a_file_replaced_during_the_run_is_opened_anew(tmp_path):
    # `siae rebuild` or a restore puts another file at the same path: never the old instance
    path, other = tmp_path / "siae.duckdb", tmp_path / "other.duckdb"
    with connect(other) as con:
        con.execute("CREATE TABLE ops.t AS SELECT 'other' AS x")
    with shared_instance():
        with connect(path) as con:
            con.execute("CREATE TABLE ops.t AS SELECT 'first' AS x")
        os.replace(other, path)
        with connect(path) as con:
            assert con.execute("SELECT x FROM ops.t").fetchall() == [("other",)]


def test_an_error_inside_a_connection_leaves_the_instance_usable(tmp_path):
    path = tmp_path / "siae.duckdb"
    with shared_instance():
        with pytest.raises(duckdb.Error), connect(path) as con:
            con.execute("BEGIN")
            con.execute("CREATE TABLE ops.t AS SELECT 1 AS x")
            con.execute("SELECT * FROM ops.missing")
        with connect(path) as con:  # the failed transaction was rolled back with its cursor
            assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'"
                               ).fetchall() == [(0,)]
