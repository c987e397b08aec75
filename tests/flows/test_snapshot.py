"""The analysts' snapshot: sessions open on it never block a sync, and stay readable."""

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from flows.sync import sync, sync_direct
from tests.helpers import query, run_summary
from warehouse.paths import WarehousePaths

# A reader in its own process, as an analyst's session: `held` keeps one read-only connection
# for its whole life, `fresh` opens a new one for every read. Each read counts the
# consolidations the snapshot knows; errors are kept with their message.
READER = r"""
import json, sys, time
from pathlib import Path
import duckdb
path, mode, out, stop = sys.argv[1:5]
seen, errors = [], []
con = duckdb.connect(path, read_only=True) if mode == "held" else None
Path(out + ".ready").touch()
while not Path(stop).exists():
    try:
        c = con or duckdb.connect(path, read_only=True)
        seen.append(c.execute("SELECT count(*) FROM ops.consolidations").fetchall()[0][0])
        c.execute("SELECT count(*) FROM marts.siae").fetchall()
        if con is None:
            c.close()
    except Exception as exc:
        errors.append(str(exc).splitlines()[0])
    time.sleep(0.05)
Path(out).write_text(json.dumps({"seen": seen, "errors": errors}))
"""

pytestmark = pytest.mark.usefixtures("prefect_server")


def _start_reader(path: Path, mode: str, folder: Path) -> tuple[subprocess.Popen, Path]:
    out = folder / f"{mode}.json"
    proc = subprocess.Popen([sys.executable, "-c", READER, str(path), mode, str(out),
                             str(folder / "stop")])
    deadline = time.monotonic() + 60
    while not Path(str(out) + ".ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the reader did not start"
        time.sleep(0.1)
    return proc, out


def test_sessions_open_on_the_snapshot_never_block_a_sync_and_read_throughout(demo, tmp_path):
    home = tmp_path / "wh"
    first = sync_direct(str(demo / "sources.toml"), home=str(home))
    snapshot = WarehousePaths(home).snapshot
    assert first.published and snapshot.exists()
    readers = [_start_reader(snapshot, mode, tmp_path) for mode in ("held", "fresh")]
    try:
        # a whole sync, with a consolidation that really rewrites the tables
        again = run_summary(sync, str(demo / "sources.toml"), home=str(home), force=True)
    finally:
        (tmp_path / "stop").touch()
        for proc, _ in readers:
            proc.wait(60)
    assert again.published and {s.status for s in again.steps} <= {"ok", "unchanged"}
    (held, fresh) = (json.loads(out.read_text()) for _, out in readers)
    assert held["errors"] == [] and fresh["errors"] == []
    assert len(held["seen"]) > 20 and len(fresh["seen"]) > 20  # they read during the sync
    # the open session kept the version it opened; new sessions see the new one
    assert set(held["seen"]) == {1}
    assert fresh["seen"][0] == 1 and fresh["seen"][-1] == 2
    assert sorted(fresh["seen"]) == fresh["seen"]  # never back to an older version


def test_the_snapshot_holds_the_marts_core_and_ops_tables_with_their_comments(demo, tmp_path):
    home = tmp_path / "wh"
    sync_direct(str(demo / "sources.toml"), home=str(home))
    with duckdb.connect(str(WarehousePaths(home).snapshot), read_only=True) as con:
        views = {f"{s}.{v}": c for s, v, c in con.execute(
            "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE NOT internal"
        ).fetchall()}
        tables = {f"{s}.{t}" for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
        published = con.execute("SELECT count(*) FROM marts.siae").fetchall()[0][0]
    assert {"marts.siae", "marts.siae_changes", "marts.siae_provenance", "marts.publications",
            "marts.doublons_a_verifier"} <= set(views)
    assert all(views.values()), "every view keeps its comment"
    assert {"core.structures", "core.structures_history", "ops.runs", "ops.rejects",
            "ops.publications"} <= tables
    assert published == query(home, "SELECT count(*) FROM marts.siae")[0][0] > 0


def test_siae_sql_reads_the_snapshot_as_a_table_csv_or_json_and_never_writes(demo, tmp_path,
                                                                          capsys):
    home = tmp_path / "wh"
    assert main(["sql", "SELECT 1", "--home", str(home)]) == 1
    assert "no analysts' snapshot" in capsys.readouterr().err
    sync_direct(str(demo / "sources.toml"), home=str(home))
    sql = "SELECT structure_id, types FROM marts.siae ORDER BY structure_id LIMIT 2"
    expected = query(home, sql)
    assert main(["sql", sql, "--home", str(home), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["structure_id"], r["types"]) for r in rows] == expected
    assert main(["sql", sql, "--home", str(home), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "structure_id,types" and lines[1].startswith(expected[0][0] + ",")
    assert main(["sql", sql, "--home", str(home)]) == 0
    table = capsys.readouterr().out
    assert expected[1][0] in table and table.rstrip().endswith("(2 rows)")
    assert main(["sql", "DELETE FROM marts.publications", "--home", str(home)]) == 1
    assert "read-only" in capsys.readouterr().err
    assert query(home, "SELECT count(*) FROM marts.publications")[0][0] == 1
