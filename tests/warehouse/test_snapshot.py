"""The analysts' snapshot copies again only the tables that changed, and always ends equal
to the warehouse."""

import duckdb
import pytest

from warehouse.snapshot import LEDGER, NOT_COPIED, write_snapshot


def tables(path) -> dict:
    """The snapshot's tables and rows, but its ledger."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                            "WHERE schema_name IN ('raw', 'staging', 'core', 'ops', 'marts') "
                            "ORDER BY ALL").fetchall()
        return {f"{s}.{t}": con.execute(f"SELECT * FROM {s}.{t} ORDER BY ALL").fetchall()
                for s, t in names if (s, t) != LEDGER}


def ledger(path) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        return {f"{s}.{t}": (n, at) for s, t, n, at in con.execute(
            "SELECT schema_name, table_name, row_count, copied_at FROM ops.snapshot_tables"
        ).fetchall()}


def test_an_unchanged_table_is_kept_and_every_change_is_copied(con, tmp_path):
    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.big AS SELECT range AS id, 'x' || range AS nom "
                "FROM range(5000)")
    con.execute("CREATE TABLE ops.runs_log (run_id VARCHAR, n INTEGER)")
    con.execute("INSERT INTO ops.runs_log VALUES ('a', 1)")
    con.execute("CREATE TABLE staging.src (id INTEGER, tags VARCHAR[])")
    con.execute("INSERT INTO staging.src VALUES (1, ['a', 'b']), (1, ['a', 'b'])")
    con.execute("CREATE VIEW marts.big_count AS SELECT count(*) AS n FROM core.big")
    first = write_snapshot(con, target)
    assert first["copied"] == first["tables"]

    # nothing changed: nothing copied, the same content
    assert write_snapshot(con, target)["copied"] == 0
    assert tables(target) == tables_of(con)

    # a row added, a column added, a duplicate removed, a table dropped: each one copied
    con.execute("INSERT INTO ops.runs_log VALUES ('b', 2)")
    con.execute("ALTER TABLE core.big ADD COLUMN ville VARCHAR")
    con.execute("DELETE FROM staging.src")
    con.execute("INSERT INTO staging.src VALUES (1, ['a', 'b'])")
    con.execute("CREATE TABLE ops.gone AS SELECT 1 AS x")
    assert write_snapshot(con, target)["copied"] == 4
    con.execute("DROP TABLE ops.gone")
    fourth = write_snapshot(con, target)
    assert fourth["copied"] == 0 and "ops.gone" not in tables(target)
    assert tables(target) == tables_of(con)
    with duckdb.connect(str(target), read_only=True) as snap:
        assert snap.execute("SELECT n FROM marts.big_count").fetchall() == [(5000,)]
        assert [c[0] for c in snap.execute("DESCRIBE core.big").fetchall()] == \
            ["id", "nom", "ville"]


def test_the_changed_tables_are_counted(con, tmp_path):
    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.a AS SELECT 1 AS x")
    con.execute("CREATE TABLE core.b AS SELECT 1 AS x")
    write_snapshot(con, target)
    con.execute("UPDATE core.b SET x = 2")
    assert write_snapshot(con, target)["copied"] == 1
    assert tables(target)["core.b"] == [(2,)]


def tables_of(con) -> dict:
    names = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE "
                        "database_name = current_database() AND schema_name IN "
                        "('raw', 'staging', 'core', 'ops', 'marts') ORDER BY ALL").fetchall()
    return {f"{s}.{t}": con.execute(f"SELECT * FROM {s}.{t} ORDER BY ALL").fetchall()
            for s, t in names if (s, t) not in NOT_COPIED and (s, t) != LEDGER}


def test_the_ledger_says_when_each_table_was_copied(con, tmp_path):
    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.a AS SELECT range AS x FROM range(3)")
    con.execute("CREATE TABLE core.b AS SELECT 1 AS x")
    write_snapshot(con, target)
    first = ledger(target)
    assert first["core.a"][0] == 3 and first["core.b"][0] == 1
    con.execute("UPDATE core.b SET x = 2")
    second = ledger(target) if write_snapshot(con, target)["copied"] == 1 else None
    assert second["core.a"] == first["core.a"]  # kept: its copy time stays
    assert second["core.b"][1] > first["core.b"][1]
    with duckdb.connect(str(target), read_only=True) as snap:
        comment = snap.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'ops' "
                               "AND table_name = 'snapshot_tables'").fetchall()[0][0]
    assert "snapshot" in comment


def test_the_matchers_cache_and_other_schemas_are_left_out(con, tmp_path):
    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.kept AS SELECT 1 AS x")
    con.execute("CREATE SCHEMA scratch")
    con.execute("CREATE TABLE scratch.work AS SELECT 1 AS x")
    con.execute("CREATE VIEW scratch.work_view AS SELECT * FROM scratch.work")
    for schema, table in NOT_COPIED:
        con.execute(f"CREATE TABLE IF NOT EXISTS {schema}.{table} AS SELECT 1 AS x")
    write_snapshot(con, target)
    with duckdb.connect(str(target), read_only=True) as snap:
        names = {f"{s}.{t}" for s, t in snap.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
            "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert "core.kept" in names
    assert not names & {"scratch.work", "scratch.work_view",
                        *(f"{s}.{t}" for s, t in NOT_COPIED)}
    # the warehouse itself keeps them
    assert con.execute("SELECT count(*) FROM scratch.work").fetchall() == [(1,)]


def test_the_pipeline_never_opens_the_snapshot_it_replaces(con, tmp_path):
    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.a AS SELECT 1 AS x")
    write_snapshot(con, target)
    # an analyst's session holding it for writing: the ledger comes from the warehouse
    with duckdb.connect(str(target)):
        assert write_snapshot(con, target)["copied"] == 0
        con.execute("UPDATE core.a SET x = 2")
        assert write_snapshot(con, target)["copied"] == 1
    assert tables(target) == tables_of(con)


def test_a_snapshot_removed_by_hand_counts_every_table_as_changed(con, tmp_path):
    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.a AS SELECT 1 AS x")
    write_snapshot(con, target)
    target.unlink()
    again = write_snapshot(con, target)
    assert again["copied"] == again["tables"] and tables(target) == tables_of(con)


def test_the_warehouse_keeps_the_ledger_documented(con, tmp_path):
    con.execute("CREATE TABLE core.a AS SELECT 1 AS x")
    write_snapshot(con, tmp_path / "analysts.duckdb")
    comment = con.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND "
                          "table_name = ?", list(LEDGER)).fetchall()
    assert comment and "snapshot" in comment[0][0]


def test_a_commit_during_the_copy_gets_the_file_copied_again(con, tmp_path, monkeypatch):
    import warehouse.snapshot as snapshot

    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.a AS SELECT 1 AS x")
    copies = []
    copy = snapshot.shutil.copyfile

    def copy_while_a_thread_commits(source, into):
        copy(source, into)
        copies.append(into)
        if len(copies) == 1:  # the first copy is met by a commit
            con.execute("INSERT INTO core.a VALUES (2)")

    monkeypatch.setattr(snapshot.shutil, "copyfile", copy_while_a_thread_commits)
    write_snapshot(con, target)
    assert len(copies) == 2
    assert tables(target) == tables_of(con) and tables(target)["core.a"] == [(1,), (2,)]


def test_a_file_that_never_stops_changing_keeps_the_previous_snapshot(con, tmp_path,
                                                                      monkeypatch):
    import warehouse.snapshot as snapshot

    target = tmp_path / "analysts.duckdb"
    con.execute("CREATE TABLE core.a AS SELECT 1 AS x")
    write_snapshot(con, target)
    copy = snapshot.shutil.copyfile

    def copy_while_a_thread_commits(source, into):
        copy(source, into)
        con.execute("INSERT INTO core.a VALUES (2)")

    monkeypatch.setattr(snapshot.shutil, "copyfile", copy_while_a_thread_commits)
    with pytest.raises(snapshot.SnapshotCopyError, match="previous snapshot is kept"):
        write_snapshot(con, target)
    assert tables(target)["core.a"] == [(1,)]
    assert not list(tmp_path.glob(".analysts.duckdb.building*"))
