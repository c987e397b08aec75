"""Tables to Python rows: the same rows as pandas' and pyarrow's own conversions."""

import datetime as dt

import pyarrow as pa

from transforms.frames import arrow_rows


def test_arrow_rows_are_the_rows_of_to_pylist():
    table = pa.table({
        "structure_id": ["a", "b", None],
        "types": [["ACI"], [], None],
        "latitude": [45.1, None, 43.0],
        "date_maj": [dt.date(2026, 1, 2), None, dt.date(2025, 5, 6)],
        "recrute": [True, False, None],
    })
    assert arrow_rows(table) == table.to_pylist()


def test_a_table_without_columns_or_rows():
    assert arrow_rows(pa.table({"a": pa.array([], pa.string())})) == []
    assert arrow_rows(pa.table({"a": [1, 2]}).select([])) == [{}, {}]


def test_arrow_rows_over_chunks_share_the_texts_that_repeat():
    # one str object per distinct text: a national release's rows repeat their communes
    table = pa.Table.from_batches([
        pa.record_batch({"commune": ["Lyon", None], "types": [["ACI"], None]}),
        pa.record_batch({"commune": ["Lyon", "Bron"], "types": [["ACI"], []]}),
    ])
    rows = arrow_rows(table)
    assert rows == table.to_pylist()
    assert rows[0]["commune"] is rows[2]["commune"]
    assert rows[0]["types"] is not rows[2]["types"]  # each row's list is its own


def test_rows_made_one_at_a_time_are_the_rows_of_to_dict():
    import pandas as pd

    from transforms.frames import iter_rows

    frame = pd.DataFrame({"structure_id": ["a", "b", None], "adresse": ["1 rue", None, "x"],
                          "code_insee": [None, "07019", "69123"]}, dtype=object)
    rows = iter_rows(frame)
    assert not isinstance(rows, list)  # a generator: nothing held before it is read
    assert list(rows) == frame.to_dict("records")
    assert list(iter_rows(frame[[]])) == [{}, {}, {}]
