"""Typed writes: declared column types, never guessed from the data."""

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from tests.helpers import structure
from warehouse.db import STRUCTURE_TYPES, connect, replace_table, transaction


def test_a_list_column_of_mostly_empty_lists_keeps_its_declared_type(con):
    # DuckDB guesses a column's type from a sample of rows: 2,000 empty lists then one
    # non-empty list used to fail the cast (VARCHAR -> "NULL").
    rows = [structure(i, geo_refused=[]) for i in range(2500)]
    rows.append(structure(2500, geo_refused=["dreets: (0.0, 0.0) outside France"]))
    replace_table(con, "core.structures", pd.DataFrame(rows, dtype=object), STRUCTURE_TYPES)
    got = con.execute("SELECT geo_refused FROM core.structures WHERE len(geo_refused) > 0"
                      ).fetchall()
    assert got == [(["dreets: (0.0, 0.0) outside France"],)]


def test_columns_of_nulls_then_values_keep_their_types(con):
    rows = [structure(i, date_maj=None, geo_score=None) for i in range(3000)]
    rows.append(structure(3000, date_maj=dt.date(2026, 1, 2), geo_score=0.91))
    replace_table(con, "core.structures", pd.DataFrame(rows, dtype=object), STRUCTURE_TYPES)
    assert con.execute("SELECT max(date_maj), max(geo_score) FROM core.structures"
                       ).fetchone() == (dt.date(2026, 1, 2), 0.91)


def test_a_failed_transaction_raises_the_real_error_and_rolls_back(con):
    con.execute("CREATE TABLE core.t (x INTEGER)")
    with pytest.raises(Exception, match="Could not convert|Conversion Error") as err, \
            transaction(con):
        con.execute("INSERT INTO core.t VALUES (1)")
        con.execute("INSERT INTO core.t VALUES ('not a number')")
    assert "aborted" not in str(err.value)
    assert con.execute("SELECT count(*) FROM core.t").fetchone()[0] == 0


def test_rows_written_in_a_transaction_are_not_held_in_memory_until_it_ends(con):
    # A registered Arrow table lives until the commit, unregistered or not: the
    # consolidation's one transaction held 600 MB of them at 1M.
    before = pa.total_allocated_bytes()
    frame = pd.DataFrame([structure(i, nom=f"Atelier {i} " + "x" * 200) for i in range(3000)],
                         dtype=object)
    with transaction(con):
        replace_table(con, "core.structures", frame, STRUCTURE_TYPES)
        held = pa.total_allocated_bytes() - before
        assert con.execute("SELECT count(*) FROM core.structures").fetchall() == [(3000,)]
    assert held < 100_000  # the ~700 KB of names went with the INSERT
    assert con.execute("SELECT count(*) FROM core.structures").fetchall() == [(3000,)]


def test_a_warehouse_from_older_code_gets_the_current_schema(tmp_path):
    # Opening skips the schema script when ops.schema_version matches this code; a file
    # last opened by other code (another version) gets the script and the migrations again.
    path = tmp_path / "siae.duckdb"
    with connect(path) as con:
        version = con.execute("SELECT version FROM ops.schema_version").fetchall()
        con.execute("DROP TABLE ops.alerts")
        con.execute("UPDATE ops.schema_version SET version = 'older code'")
    with connect(path) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'ops' "
                           "AND table_name = 'alerts'").fetchall() == [(1,)]
        assert con.execute("SELECT version FROM ops.schema_version").fetchall() == version


def test_typed_columns_take_what_pandas_frames_hold(con):
    # Arrow converts most columns itself; what it refuses (an ISO text for a timestamp, a
    # float in a text column) goes through the value-by-value path.
    import numpy as np

    from warehouse.db import insert_rows
    con.execute("CREATE TABLE core.t (s VARCHAR, n INTEGER, d DOUBLE, ts TIMESTAMP, "
                "l VARCHAR[], b BOOLEAN)")
    frame = pd.DataFrame({
        "s": ["a", float("nan"), None],
        "n": [np.int64(1), None, 3],
        "d": [1, 2.5, float("nan")],
        "ts": ["2026-01-02 03:04:05", None, "2026-01-03"],
        "l": [np.array(["x", "y"]), [], None],
        "b": [True, np.bool_(False), None],
    }, dtype=object)
    insert_rows(con, "core.t", frame, {"s": "VARCHAR", "n": "INTEGER", "d": "DOUBLE",
                                        "ts": "TIMESTAMP", "l": "VARCHAR[]",
                                        "b": "BOOLEAN"})
    assert con.execute("SELECT * FROM core.t").fetchall() == [
        ("a", 1, 1.0, dt.datetime(2026, 1, 2, 3, 4, 5), ["x", "y"], True),
        (None, None, 2.5, None, [], False),
        (None, 3, None, dt.datetime(2026, 1, 3), None, None)]


def test_a_frame_is_inserted_in_chunks_with_every_row_in_order(con, monkeypatch):
    # A national run's structures go in INSERT_CHUNK rows at a time (one Arrow table of them
    # was 500 MB at the locate step's peak). A chunk whose column Arrow refuses (ISO text
    # for a timestamp) takes the value-by-value path alone; the others keep theirs.
    from warehouse import db
    monkeypatch.setattr(db, "INSERT_CHUNK", 2)
    con.execute("CREATE TABLE core.t (i INTEGER, ts TIMESTAMP, l VARCHAR[])")
    frame = pd.DataFrame({
        "i": [0, 1, 2, 3, 4],
        "ts": [dt.datetime(2026, 1, 1), None, "2026-01-03 00:00:00", None,
               dt.datetime(2026, 1, 5)],
        "l": [[], ["a"], None, [], ["b", "c"]],
    }, dtype=object)
    db.insert_rows(con, "core.t", frame, {"i": "INTEGER", "ts": "TIMESTAMP",
                                          "l": "VARCHAR[]"})
    assert con.execute("SELECT * FROM core.t ORDER BY rowid").fetchall() == [
        (0, dt.datetime(2026, 1, 1), []), (1, None, ["a"]),
        (2, dt.datetime(2026, 1, 3), None), (3, None, []),
        (4, dt.datetime(2026, 1, 5), ["b", "c"])]


def test_a_query_is_read_as_native_python_values(con):
    # the record frames hold str, int, date, list and None, never numpy values or NaN
    from warehouse.db import fetch_frame
    frame = fetch_frame(con, "SELECT * FROM (VALUES ('a', 1, DATE '2026-01-02', ['x']), "
                             "(NULL, NULL, NULL, NULL), ('é', 3, NULL, [])) t(s, n, d, l)")
    assert frame.to_dict("list") == {"s": ["a", None, "é"], "n": [1, None, 3],
                                     "d": [dt.date(2026, 1, 2), None, None],
                                     "l": [["x"], None, []]}
    assert [type(v) for v in frame["s"]] == [str, type(None), str]
    assert [type(v) for v in frame["n"]] == [int, type(None), int]


@pytest.mark.parametrize("case, values", [
    ("repeated text and nulls over chunks", [["a", None, "a"], ["a", "b", None]]),
    ("empty list and list of one empty text", [[[], [""], ["", ""], None]]),
    ("items holding the key separator", [[["a\x1fb"], ["a", "b"], ["a\x1f", "b"]]]),
    ("null items", [[["a", None], [None], ["a"]]]),
    ("lists in different orders", [[["x", "y"], ["y", "x"], ["x", "y"]], [["x"]]]),
    ("no row at all", [[]]),
])
def test_an_arrow_column_is_read_as_to_pylist_reads_it(case, values):
    # values that repeat share one str object (a million staged records: 1.9 -> 1.1 GB);
    # what the frame holds must not change
    import pyarrow as pa

    from warehouse.db import frame_of_arrow
    typed = {"no row at all": pa.string()}.get(case)
    column = pa.chunked_array(values, type=typed)
    got = frame_of_arrow(pa.table({"c": column}))["c"].tolist()
    assert got == column.to_pylist(), case
    assert [type(v) for v in got] == [type(v) for v in column.to_pylist()], case


def test_rows_that_hold_the_same_list_hold_lists_of_their_own():
    # callers add to a record's list (its types): the other records must not change
    import pyarrow as pa

    from warehouse.db import frame_of_arrow
    lists = frame_of_arrow(pa.table({"types": [["ACI"], ["ACI"], ["ACI"]]}))["types"]
    lists[0].append("EI")
    assert lists.tolist() == [["ACI", "EI"], ["ACI"], ["ACI"]]


def test_random_columns_are_read_as_to_pylist_reads_them():
    import random

    import pyarrow as pa

    from warehouse.db import frame_of_arrow
    rng = random.Random(14)
    alphabet = ["", "a", "b", "é", "\x1f", None]

    def text():
        return rng.choice(alphabet) if rng.random() < 0.7 else "".join(
            rng.choice("ab\x1f") for _ in range(rng.randint(0, 3)))

    for _ in range(200):
        texts = [text() for _ in range(rng.randint(0, 12))]
        lists = [None if rng.random() < 0.2 else
                 [t for t in (text() for _ in range(rng.randint(0, 3)))
                  if t is not None or rng.random() < 0.3]
                 for _ in range(len(texts))]
        table = pa.table({"t": pa.array(texts, pa.string()),
                          "l": pa.array(lists, pa.list_(pa.string()))})
        frame = frame_of_arrow(table)
        assert frame.to_dict("list") == table.to_pydict()


def test_duckdb_memory_limit_grows_with_the_warehouse_or_is_set(tmp_path, monkeypatch):
    # DuckDB's own default is 80% of the machine: a national consolidation's transaction held
    # 700 MB it had written to the file already. What cannot go to disk (a key index) must
    # fit: a larger warehouse gets a larger limit. The data team may set it.
    from warehouse import db
    path = tmp_path / "siae.duckdb"

    def limit(**kw):
        with connect(path, **kw) as con:
            return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]

    small = limit()
    with connect(path) as con:
        con.execute("CREATE TABLE core.t AS SELECT range AS i FROM range(100000)")
    monkeypatch.setattr(db, "MEMORY_PER_ROW", 10_000)  # DuckDB's estimate of 100,000 rows
    larger = limit()
    monkeypatch.setenv("SIAE_DB_MEMORY_LIMIT", "256MB")
    assert (small, limit(read_only=True)) == ("488.2 MiB", "244.1 MiB")
    assert larger.endswith(" MiB") and float(larger.split()[0]) > 800


def test_a_memory_limit_duckdb_cannot_read_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAE_DB_MEMORY_LIMIT", "lots")
    with (pytest.raises(ValueError, match="SIAE_DB_MEMORY_LIMIT='lots' is not a memory size"),
          connect(tmp_path / "siae.duckdb")):
        pass
