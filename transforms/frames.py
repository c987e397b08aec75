"""DataFrames to rows without pandas' per-cell boxing."""

from __future__ import annotations

import pandas as pd


def rows_of(frame: pd.DataFrame) -> list[dict]:
    """`frame.to_dict("records")`, three to four times faster on the warehouse's object
    frames: each column is turned into a list once, instead of boxing every cell."""
    columns = list(frame.columns)
    if not columns:
        return [{} for _ in range(len(frame))]
    values = [frame.iloc[:, k].tolist() for k in range(len(columns))]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def narrowed(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The named columns of `df` that it has: a loop over rows_of() then builds small dicts
    (a national set's rows hold thirty fields each, most of them unread)."""
    return df[[c for c in columns if c in df.columns]]


def arrow_rows(table) -> list[dict]:
    """`table.to_pylist()` (a pyarrow Table), column by column: a third faster on a national
    publication (370,000 rows: 4.9 to 3.2 s)."""
    names = table.column_names
    columns = [column.to_pylist() for column in table.columns]
    if not columns:
        return [{} for _ in range(table.num_rows)]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
