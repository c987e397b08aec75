"""DataFrames and Arrow tables to Python values: rows without pandas' per-cell boxing, and
one str object per distinct text of a column."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa


def rows_of(frame: pd.DataFrame) -> list[dict]:
    """`frame.to_dict("records")`, three to four times faster on the warehouse's object
    frames: each column is turned into a list once, instead of boxing every cell."""
    return list(iter_rows(frame))


def iter_rows(frame: pd.DataFrame) -> Iterator[dict]:
    """`rows_of`'s dicts made one at a time: a loop that reads each row once need not hold
    them all (a national run's 370,000 structures: about 130 MB)."""
    columns = list(frame.columns)
    values = [frame.iloc[:, k].tolist() for k in range(len(columns))]
    if not columns:
        return ({} for _ in range(len(frame)))
    return (dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True))


def narrowed(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The named columns of `df` that it has: a loop over rows_of() then builds small dicts
    (a national set's rows hold thirty fields each, most of them unread)."""
    return df[[c for c in columns if c in df.columns]]


def arrow_rows(table) -> list[dict]:
    """`table.to_pylist()` (a pyarrow Table), column by column: a third faster on a national
    publication (370,000 rows: 4.9 to 3.2 s)."""
    names = table.column_names
    columns = [column_values(column) for column in table.columns]
    if not columns:
        return [{} for _ in range(table.num_rows)]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def is_text(column: pa.ChunkedArray | pa.Array) -> bool:
    """Whether an Arrow column holds text."""
    return _text_type(column.type)


def _text_type(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def column_values(column: pa.ChunkedArray | pa.Array) -> list:
    """`column.to_pylist()`, with one str object per distinct text (lists of text included):
    the same values in less memory."""
    if is_text(column):
        return shared_text(column).tolist()
    kind = column.type
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _text_type(
            kind.value_type):
        return _shared_lists(column)
    return column.to_pylist()


def _whole(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def shared_text(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A text column as an object array of str and None, one str object per distinct value.

    Most columns repeat a few values (the source, the commune, the département): a str per
    cell held 1.9 GB for a million staged records, one per value 1.1 GB, in the same time
    (numpy's take builds the array in C)."""
    encoded = _whole(column).dictionary_encode()
    values = np.empty(len(encoded.dictionary) + 1, dtype=object)
    values[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)
    values[-1] = None  # the nulls' position
    return values[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()]


def _shared_lists(column: pa.ChunkedArray | pa.Array) -> list:
    """A list-of-text column as Python lists (a new list per row, as callers may change one)
    of one str object per distinct item. A million rows: 0.2 s, as to_pylist."""
    array = _whole(column)
    if not len(array):
        return []
    offsets = array.offsets.to_numpy()  # into .values, this array's own rows only
    start = int(offsets[0])
    items = shared_text(array.values.slice(start, int(offsets[-1]) - start)).tolist()
    lists = [items[a:b] for a, b in itertools.pairwise((offsets - start).tolist())]
    if array.null_count:
        for row in np.flatnonzero(~array.is_valid().to_numpy(zero_copy_only=False)).tolist():
            lists[row] = None
    return lists
