"""Merge v0: one place per SIRET, survivorship by priority then freshness, stable IDs."""

import datetime as dt
import json

import pandas as pd

from transforms.merge import identity_key, merge_records, new_structure_id
from transforms.staging import RECORD_COLUMNS


def rec(source, source_id, siret, **fields):
    base = dict.fromkeys(RECORD_COLUMNS)
    base.update(
        source=source,
        source_id=source_id,
        siret=siret,
        types=["ACI"],
        nom=f"{source} name",
        row_number=1,
    )
    base.update(fields)
    return base


RECORDS = pd.DataFrame(
    [
        rec(
            "reseau",
            "r1",
            "19070916200019",
            telephone="+33465711234",
            date_maj=dt.date(2024, 1, 1),
            code_insee="07019",
            adresse="3 rue Neuve",
            code_postal="07200",
        ),
        rec(
            "dreets",
            "d1",
            "19070916200019",
            types=["ETTI"],
            latitude=44.6,
            longitude=4.4,
            date_maj=dt.date(2023, 1, 1),
        ),
        rec("emplois", "e1", None, nom="Sans SIRET"),
        rec("emplois", "e2", "82863454399901", nom="Antenne"),
    ],
    dtype=object,
)
PRIORITY = {"dreets": 60, "emplois": 50, "reseau": 40}


def test_same_siret_is_one_place_with_union_of_kinds_and_sources():
    structures, links, _ = merge_records(RECORDS, PRIORITY, {})
    assert len(structures) == 3
    merged = structures[structures["siret"] == "19070916200019"].iloc[0]
    assert merged["types"] == ["ACI", "ETTI"]
    assert merged["sources"] == ["dreets", "reseau"]
    assert set(links[links["structure_id"] == merged["structure_id"]]["rule"]) == {"siret"}


def test_each_field_from_the_highest_priority_source_that_has_it():
    structures, _, _ = merge_records(RECORDS, PRIORITY, {})
    merged = structures[structures["siret"] == "19070916200019"].iloc[0]
    provenance = json.loads(merged["provenance"])
    assert merged["nom"] == "dreets name" and provenance["nom"] == "dreets"
    assert merged["telephone"] == "+33465711234" and provenance["telephone"] == "reseau"
    # the address block travels together, from the source that placed the commune
    assert (merged["adresse"], merged["code_insee"]) == ("3 rue Neuve", "07019")
    assert merged["date_maj"] == dt.date(2024, 1, 1)
    assert merged["coordinate_candidates"] == [(4.4, 44.6, "dreets")]


def test_freshest_wins_between_sources_of_equal_priority():
    records = pd.DataFrame(
        [
            rec("a", "1", "19070916200019", nom="Old", date_maj=dt.date(2020, 1, 1)),
            rec("b", "1", "19070916200019", nom="New", date_maj=dt.date(2025, 1, 1)),
        ],
        dtype=object,
    )
    structures, _, _ = merge_records(records, {"a": 50, "b": 50}, {})
    assert structures.iloc[0]["nom"] == "New"


def test_placeholder_and_missing_sirets_are_not_identities():
    assert identity_key("82863454399901", "emplois", "e2") == ("record:emplois:e2", "source_record")
    assert identity_key(None, "emplois", "e1")[1] == "source_record"
    assert identity_key("19070916200019", "x", "1") == ("siret:19070916200019", "siret")


def test_ids_do_not_depend_on_row_or_source_order():
    a, _, ids_a = merge_records(RECORDS, PRIORITY, {})
    shuffled = RECORDS.iloc[::-1].reset_index(drop=True)
    b, _, ids_b = merge_records(shuffled, PRIORITY, {})
    assert ids_a == ids_b
    pd.testing.assert_frame_equal(a, b)


def test_known_ids_are_kept_and_new_ids_avoid_them():
    known = {"siret:19070916200019": "siae-keepme0001"}
    structures, _, ids = merge_records(RECORDS, PRIORITY, known)
    assert "siae-keepme0001" in set(structures["structure_id"])
    assert ids["siret:19070916200019"] == "siae-keepme0001"
    taken = {new_structure_id("k", set())}
    assert new_structure_id("k", taken) not in taken
