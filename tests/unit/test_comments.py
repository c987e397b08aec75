"""The warehouse's table comments and the README's warehouse table say the same."""

import re
from pathlib import Path

from warehouse.comments import TABLE_COMMENTS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_warehouse_table_matches_the_comments_written_into_duckdb():
    block = README.read_text(encoding="utf-8").split("## The warehouse (DuckDB)")[1]
    block = block.split("\n## ")[0]
    documented = {}
    for line in block.splitlines():
        m = re.match(r"^\| (`[^|]+`) \| (.+) \|$", line)
        if m:
            for name in re.findall(r"`([^`]+)`", m.group(1)):
                documented[name] = m.group(2).replace("`", "")
    assert documented == TABLE_COMMENTS


def test_comments_already_in_place_are_not_written_again():
    import duckdb

    from warehouse.comments import apply_comments
    from warehouse.db import apply_schema

    con = duckdb.connect()
    apply_schema(con)
    con.execute("CREATE TABLE staging.demo (nom VARCHAR, siret VARCHAR)")
    assert apply_comments(con) > 0
    assert apply_comments(con) == 0  # nothing changed: no catalog write
    con.execute("COMMENT ON TABLE ops.runs IS 'stale'")
    con.execute("COMMENT ON COLUMN staging.demo.nom IS NULL")
    assert apply_comments(con) == 1  # one table's own comment (and one column's)
    assert con.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'ops' AND "
                       "table_name = 'runs'").fetchall()[0][0] == TABLE_COMMENTS["ops.runs"]
    assert con.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = 'staging' "
                       "AND table_name = 'demo' AND column_name = 'nom'").fetchall()[0][0]
