"""Which source gave each published value, and how fresh it is (the structure pages'
provenance)."""

import datetime as dt
import json

import pandas as pd

from tests.helpers import create_marts, record, structure
from warehouse.db import LINK_TYPES, RECORD_TYPES, insert_rows
from warehouse.publications import provenance_digests, value_sources


def test_each_value_names_its_source_and_that_record_s_date(con):
    create_marts(con, [
        structure(1, provenance=json.dumps({"nom": "asp", "telephone": "reseau",
                                            "types:ACI": "asp"})),
        structure(2, provenance=json.dumps({"nom": "reseau"})),
        structure(3),  # no provenance: absent
    ])
    insert_rows(con, "core.records", pd.DataFrame([
        record("asp", "a1", date_maj=dt.date(2026, 3, 4)),
        record("reseau", "r1"),  # undated: the day its source was staged
        record("reseau", "r2", date_maj=dt.date(2025, 1, 2)),
    ], dtype=object), RECORD_TYPES)
    insert_rows(con, "core.links", pd.DataFrame([
        {"structure_id": "siae-0001", "source": "asp", "source_id": "a1", "rule": "siret"},
        {"structure_id": "siae-0001", "source": "reseau", "source_id": "r1", "rule": "siret"},
        {"structure_id": "siae-0002", "source": "reseau", "source_id": "r2", "rule": "siret"},
    ], dtype=object), LINK_TYPES)
    con.execute("INSERT INTO ops.source_state VALUES ('reseau', 'sha', 'fp', "
                "TIMESTAMP '2026-11-20 08:00:00', 'run', 1, 1, 0, 0, [])")
    assert value_sources(con) == {
        "siae-0001": {"nom": ("asp", "2026-03-04"), "types:ACI": ("asp", "2026-03-04"),
                      "telephone": ("reseau", "2026-11-20")},
        "siae-0002": {"nom": ("reseau", "2025-01-02")},
    }


def _two_structures(con, asp_day=dt.date(2026, 3, 4)):
    create_marts(con, [structure(1, provenance=json.dumps({"nom": "asp"})),
                       structure(2, provenance=json.dumps({"nom": "asp"}))])
    insert_rows(con, "core.records", pd.DataFrame([
        record("asp", "a1", date_maj=asp_day), record("asp", "a2", date_maj=asp_day),
    ], dtype=object), RECORD_TYPES)
    insert_rows(con, "core.links", pd.DataFrame([
        {"structure_id": "siae-0001", "source": "asp", "source_id": "a1", "rule": "siret"},
        {"structure_id": "siae-0002", "source": "asp", "source_id": "a2", "rule": "siret"},
    ], dtype=object), LINK_TYPES)


def test_the_sources_of_some_structures_only(con):
    _two_structures(con)
    assert value_sources(con, ["siae-0002", "siae-9999"]) == {
        "siae-0002": {"nom": ("asp", "2026-03-04")}}
    assert value_sources(con, []) == {}


def test_a_provenance_digest_changes_with_a_source_s_date_only(con):
    _two_structures(con)
    before = provenance_digests(con)
    assert set(before) == {"siae-0001", "siae-0002"}
    con.execute("UPDATE core.records SET date_maj = DATE '2026-06-01' WHERE source_id = 'a1'")
    after = provenance_digests(con)
    assert after["siae-0001"] != before["siae-0001"]
    assert after["siae-0002"] == before["siae-0002"]
