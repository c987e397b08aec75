"""The field table is the one declaration of the canonical record: every layer derives from it."""

from pathlib import Path

import duckdb

from tests.helpers import create_marts
from transforms import fields
from transforms.merge import STRUCTURE_COLUMNS
from transforms.publication import FIELD_NAMES, table_schema
from transforms.spec import MAPPABLE_FIELDS
from transforms.staging import RECORD_COLUMNS
from warehouse.db import RECORD_TYPES, STRUCTURE_TYPES, apply_schema

ROOT = Path(__file__).resolve().parents[2]


def test_every_layer_takes_its_columns_from_the_table_in_its_order():
    assert RECORD_COLUMNS == list(fields.RECORD) == list(RECORD_TYPES)
    assert list(STRUCTURE_TYPES) == list(fields.STRUCTURE)
    assert FIELD_NAMES == fields.PUBLISHED
    assert [f["name"] for f in table_schema()["fields"]] == list(fields.PUBLISHED)
    assert MAPPABLE_FIELDS == fields.MAPPABLE
    # the merge fills every structure field it declares, and nothing locating adds
    merged = [f.name for f in fields.FIELDS if f.merge]
    assert [c for c in STRUCTURE_COLUMNS if c in merged] == merged
    assert not set(STRUCTURE_COLUMNS) & {"geo_precision", "geo_score", "geo_source"}


def test_published_fields_are_structure_fields_and_types_are_known():
    for f in fields.FIELDS:
        assert f.type in fields.TYPES, f.name
        assert set(f.layers) <= set("RSP"), f.name
        if f.published:
            assert f.structure, f"{f.name} is published but not a column of core.structures"
        if f.merge:
            assert f.structure, f"{f.name} is merged but not a column of core.structures"


def test_marts_siae_has_the_published_columns_and_their_comments():
    con = duckdb.connect()
    apply_schema(con)
    create_marts(con, [])
    from warehouse.comments import apply_comments

    apply_comments(con)
    rows = con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = "
                       "'marts' AND table_name = 'siae' ORDER BY column_index").fetchall()
    assert [r[0] for r in rows] == list(fields.PUBLISHED)
    assert all(r[1] == fields.BY_NAME[r[0]].description for r in rows)


def test_readme_field_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert fields.readme_table() in readme, (
        "README's field table is out of date: uv run python scripts/write_readme_fields.py")
