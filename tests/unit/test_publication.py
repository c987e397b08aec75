"""Publication files: CSV and Parquet match the datapackage schema; the change log is exact."""

import csv
import datetime as dt
import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from transforms.publication import (
    FIELD_NAMES,
    compute_changes,
    csv_bytes,
    haversine_m,
    parquet_bytes,
    table_schema,
)


def row(sid, lon=4.4, lat=44.6, **kw):
    base = dict.fromkeys(FIELD_NAMES)
    base.update(structure_id=sid, nom=f"S {sid}", types=["ACI", "ETTI"], longitude=lon,
                latitude=lat, date_maj=dt.date(2024, 1, 2), sources=["a", "b"], region="84")
    base.update(kw)
    return base


ROWS = [row("siae-a"), row("siae-b", lon=None, lat=None, telephone="+33465711234")]


def test_csv_columns_and_values_follow_the_schema():
    text = csv_bytes(ROWS).decode("utf-8")
    records = list(csv.DictReader(io.StringIO(text)))
    assert list(records[0]) == [f["name"] for f in table_schema()["fields"]]
    assert records[0]["types"] == "ACI|ETTI" and records[0]["latitude"] == "44.600000"
    assert records[0]["date_maj"] == "2024-01-02"
    assert records[1]["latitude"] == "" and records[1]["telephone"] == "+33465711234"


def test_parquet_types_follow_the_schema():
    table = pq.read_table(io.BytesIO(parquet_bytes(ROWS)))
    expected = {"string": "string", "number": "double", "date": "date32[day]",
                "list": "list<element: string>", "boolean": "bool"}
    for f in table_schema()["fields"]:
        assert str(table.schema.field(f["name"]).type) == expected[f["type"]], f["name"]
    assert table.to_pylist()[0]["types"] == ["ACI", "ETTI"]


def test_same_rows_same_bytes():
    assert parquet_bytes(ROWS) == parquet_bytes([dict(r) for r in ROWS])
    assert csv_bytes(ROWS) == csv_bytes([dict(r) for r in ROWS])


def test_schema_declares_the_kinds_and_the_key():
    fields = {f["name"]: f for f in table_schema()["fields"]}
    assert fields["types"]["categories"] == ["ACI", "AI", "EI", "ETTI", "EITI", "GEIQ", "EA",
                                             "EATT"]
    assert fields["types"]["delimiter"] == "|"
    assert table_schema()["primaryKey"] == ["structure_id"]


def test_haversine():
    assert haversine_m((4.4, 44.6), (4.4, 44.6)) == 0
    assert 110_000 < haversine_m((4.4, 44.0), (4.4, 45.0)) < 112_000


def test_changes_of_a_scripted_sequence():
    first = [row("a"), row("b"), row("c")]
    # b removed, d added, a moved 1.1 km, c moved 30 m and renamed (a field change only)
    second = [row("a", lat=44.61), row("c", lat=44.60027, nom="C renamed"), row("d")]
    changes = compute_changes(first, second, 100.0, {"b": "d"})
    assert [x["structure_id"] for x in changes["added"]] == ["d"]
    assert [x["structure_id"] for x in changes["removed"]] == ["b"]
    assert [(m["structure_id"], m["distance_m"]) for m in changes["moved"]] == [("a", 1112)]
    assert changes["changed"] == [{"structure_id": "c", "fields": ["nom"]}]
    assert changes["redirects"] == [{"from": "b", "to": "d"}]
    # the equal rows known already (the publication computes them once): the same changes
    from transforms.publication import same_rows
    third = [row("a", lat=44.61), row("c"), row("d")]
    assert same_rows(second, third) == {"a", "d"}
    assert compute_changes(second, third, 100.0, same={"a", "d"}) == \
        compute_changes(second, third, 100.0)


def test_first_publication_is_all_added_and_identical_is_empty():
    assert len(compute_changes(None, ROWS)["added"]) == 2
    same = compute_changes(ROWS, [dict(r) for r in ROWS])
    assert not any(same[k] for k in ("added", "removed", "moved", "changed"))


@pytest.mark.parametrize(
    ("before", "after"),
    [((4.4, 44.6), None), (None, (4.4, 44.6))],
    ids=["lost-point", "gained-point"],
)
def test_gaining_or_losing_a_point_is_a_move(before, after):
    b = row("a", lon=before and before[0], lat=before and before[1])
    a = row("a", lon=after and after[0], lat=after and after[1])
    (move,) = compute_changes([b], [a])["moved"]
    assert move["distance_m"] is None


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x.example","click")', '\'=HYPERLINK("http://x.example","click")'),
        ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t=1+1"), ("\r=1+1", "'\r=1+1"),
        ("-4.4861", "-4.4861"), ("+33465710759", "+33465710759"), ("Régie", "Régie"),
    ],
    ids=["hyperlink", "plus", "minus", "at", "tab", "carriage-return", "number", "e164",
         "text"],
)
def test_formula_cells_are_neutralised_in_the_csv_only(value, written):
    from transforms.publication import neutralise

    assert neutralise(value) == written
    data = csv_bytes([row("siae-1", nom=value)])
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert parsed[1][FIELD_NAMES.index("nom")] == written


def test_csv_lines_kept_from_the_last_file_sit_between_new_rows_in_row_order():
    # an unchanged row's line is taken as it is; the new rows around it (one with a line
    # break in a cell, so written fully quoted) keep their order and their own quoting
    from transforms.publication import csv_lines_by_id

    before = [row("siae-a"), row("siae-b", nom="Ancien"), row("siae-c")]
    kept = {k: v for k, v in csv_lines_by_id(csv_bytes(before), ["siae-a", "siae-b", "siae-c"]
                                             ).items() if k == "siae-b"}
    after = [row("siae-a", nom="Deux\r\nlignes"), row("siae-b", nom="Nouveau"),
             row("siae-c", nom="=1+1")]
    parsed = list(csv.reader(io.StringIO(csv_bytes(after, kept).decode("utf-8"),
                                         newline="")))
    names = [r[FIELD_NAMES.index("nom")] for r in parsed[1:]]
    assert names == ["Deux\r\nlignes", "Ancien", "'=1+1"]
    assert csv_bytes(after, kept).decode("utf-8").split("\n")[1].startswith('"siae-a","')


@pytest.mark.parametrize("size", [1, 2, 5], ids=["chunk 1", "chunk 2", "one chunk"])
def test_csv_in_chunks_joins_into_the_file_in_one_piece(size):
    """Chunks of rows (a kept line, a fully quoted row and a formula among them) make the
    same text as the whole file at once."""
    from transforms.publication import csv_chunks, csv_lines_by_id

    before = [row("siae-a"), row("siae-b", nom="Ancien"), row("siae-c")]
    kept = {k: v for k, v in csv_lines_by_id(csv_bytes(before), ["siae-a", "siae-b", "siae-c"]
                                             ).items() if k == "siae-b"}
    after = [row("siae-a", nom="Deux\r\nlignes"), row("siae-b", nom="Nouveau"),
             row("siae-c", nom="=1+1"), row("siae-d", types=["ACI", "EI"])]
    pieces = list(csv_chunks(after, kept, size))
    assert len(pieces) == 1 + -(-len(after) // size)  # the header, then each chunk
    assert "".join(pieces).encode("utf-8") == csv_bytes(after, kept)
    assert "".join(csv_chunks([], None, size)).encode("utf-8") == csv_bytes([])


def test_rows_unchanged_between_releases_are_not_listed_and_changed_ones_are():
    from transforms.publication import compute_changes
    base = {"structure_id": "s1", "nom": "A", "latitude": 45.0, "longitude": 4.0,
            "types": ["ACI"], "telephone": "0401020304"}
    same = [dict(base), {**base, "structure_id": "s2"}]
    edited = [dict(base), {**base, "structure_id": "s2", "telephone": "0405060708",
                           "latitude": 45.01}]
    assert compute_changes(same, [dict(r) for r in same])["changed"] == []
    changes = compute_changes(same, edited)
    assert changes["changed"] == [{"structure_id": "s2", "fields": ["telephone"]}]
    assert [m["structure_id"] for m in changes["moved"]] == ["s2"]
    # rows that differ as Python values only (a tuple read back as a list) are compared
    # field by field, and do not count as changed
    assert compute_changes([{**base, "types": ("ACI",)}], [dict(base)])["changed"] == []


@pytest.mark.parametrize(
    ("before", "after"),
    [({"courriel": float("nan")}, {"courriel": None}),
     ({"courriel": float("nan")}, {"courriel": float("nan")}),
     ({"types": np.array(["ACI", "EI"])}, {"types": ["ACI", "EI"]})],
    ids=["nan-then-null", "nan-both", "array-then-list"],
)
def test_a_missing_value_or_an_array_read_back_is_not_a_change(before, after):
    base = {"structure_id": "s1", "nom": "A", "latitude": 45.0, "longitude": 4.0}
    changes = compute_changes([{**base, **before}], [{**base, **after}])
    assert changes["changed"] == []
    edited = compute_changes([{**base, **before}], [{**base, **after, "nom": "B"}])
    assert edited["changed"] == [{"structure_id": "s1", "fields": ["nom"]}]
