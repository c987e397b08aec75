"""Readers: the bytes of a partner file or API payload → a table of strings.

Real partner files are messy: `,` `;` `|` or tab separators, UTF-8 with or without BOM or
Windows-1252, a title row above the header, XLSX sheets whose header is not on row 1, numbers
where text was meant. Readers find the header by looking for the columns the source maps, and
keep every cell as a string so that nothing is coerced before validation.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import pandas as pd

from transforms.containers import unpack
from transforms.errors import ReadError
from transforms.text import MAX_CELL, decode_lines, shorten

HEADER_SCAN_ROWS = 30
_DELIMITERS = (";", ",", "|", "\t")


@dataclass
class Table:
    """Rows of strings ('' when empty), each with its place in the file for error messages."""

    columns: list[str]
    rows: list[list[str]]
    row_numbers: list[int]
    bad_rows: list[tuple[int, str, str]] = field(default_factory=list)  # (row, reason, raw)
    encoding: str | None = None
    delimiter: str | None = None
    header_row: int | None = None  # 1-based line/row of the header in the file
    # Why a row lacks what staging needs, when the reader knows better (row number → text).
    row_notes: dict[int, str] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame of Python strings (object dtype)."""
        return pd.DataFrame(self.rows, columns=self.columns, dtype=object)


def guess_format(name: str) -> str | None:
    """Format from a file name or URL path (`.csv.gz` counts as csv)."""
    suffixes = [s.lower() for s in PurePath(name.split("?")[0]).suffixes]
    for s in reversed(suffixes):
        if s in (".csv", ".txt", ".tsv"):
            return "csv"
        if s in (".xlsx", ".xlsm"):
            return "xlsx"
        if s in (".json", ".geojson"):
            return "json"
        if s == ".parquet":
            return "parquet"
    return None


def _clean_header(cells: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, c in enumerate(cells):
        name = " ".join(str(c).split()) or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        out.append(name)
    return out


def _find_header(rows: list[list[str]], expected: set[str]) -> tuple[int, int]:
    """Index of the row holding the most expected headers, and how many it holds."""
    wanted = {" ".join(e.split()).casefold() for e in expected}
    best, best_hits = -1, 0
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        hits = len(wanted & {" ".join(c.split()).casefold() for c in row})
        if hits > best_hits:
            best, best_hits = i, hits
    return best, best_hits


def _missing_message(expected: set[str], seen_rows: list[list[str]]) -> str:
    first = next((r for r in seen_rows if any(c.strip() for c in r)), [])
    return (
        f"none of the mapped columns ({', '.join(sorted(expected))}) appears in the first "
        f"{HEADER_SCAN_ROWS} rows; first non-empty row: {first[:8]}"
    )


def decode_text(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Decode as the given encoding, else UTF-16 (by its BOM), else UTF-8 (BOM or not), else
    line by line: UTF-8 lines as such, the others as Windows-1252 (files that mix them)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = encoding or "utf-16"  # Excel's "Unicode text"
    elif data.count(b"\x00") > max(8, len(data) // 100):
        raise ReadError("binary content (NUL bytes), not a text file")
    if encoding:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise ReadError(f"not valid {encoding} at line {line}: {exc.reason}") from exc
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return decode_lines(data.removeprefix(b"\xef\xbb\xbf"))


# The csv module refuses a field over 128 KiB and then fails the whole file: fields are read
# whole, and a row with a cell longer than MAX_CELL is refused alone.
csv.field_size_limit(1 << 30)


_UNSEEN = object()  # a record not looked at by _record_problem yet


def _record_problem(cells: list[str], width: int, delimiter: str) -> str | None:
    """Why a parsed record is not one row of the file, or None."""
    joined = "".join(cells)
    if len(joined) <= MAX_CELL and "\x00" not in joined and "\n" not in joined:
        return None  # nearly every row: one pass over its text, not three over its cells
    if any("\x00" in c for c in cells):
        return "a NUL character in a cell"
    longest = max((len(c) for c in cells), default=0)
    if longest > MAX_CELL:
        return f"a cell of {longest} characters (at most {MAX_CELL})"
    for c in cells:
        # An unterminated quote swallows the next lines into one cell: a cell holding whole
        # rows of the file (as many separators as a row) is that, not an address on two lines.
        if "\n" in c and any(line.count(delimiter) >= max(1, width - 2)
                             for line in c.split("\n")[1:]):
            return "an unterminated quote: the next lines were read into one cell"
    return None


# physical line ends as the csv module counts them (not str.splitlines: U+2028 is no line end)
_LINE_END = re.compile(r"\r\n|\r|\n")


def first_lines(text: str, count: int) -> list[str]:
    """The first `count` physical lines of `text`, as `_LINE_END.split(text)[:count]` gives
    them without splitting the whole file (1.4 s of CPU for a national staging)."""
    out, start = [], 0
    for end in _LINE_END.finditer(text):
        if len(out) == count:
            return out
        out.append(text[start:end.start()])
        start = end.end()
    return [*out, text[start:]][:count]


def read_csv(
    data: bytes, expected: Iterable[str], encoding: str | None = None, delimiter: str | None = None
) -> Table:
    """Read delimited text, finding the separator and the header row from `expected` headers.

    Every physical record is accounted for: a row, or a bad row with its reason (more cells
    than the header, an unterminated quote, a NUL character, a huge cell); the lines an
    unterminated quote swallowed are read again one by one, so that they are not lost."""
    text, used_encoding = decode_text(data, encoding)
    expected = set(expected)
    head_lines = first_lines(text, HEADER_SCAN_ROWS)
    lines: list[str] = []  # every physical line, split when a bad quote needs them
    candidates = (delimiter,) if delimiter else _DELIMITERS
    best = None  # (hits, width, delimiter, header index)
    for d in candidates:
        sample = list(csv.reader(head_lines, delimiter=d))
        idx, hits = _find_header(sample, expected)
        width = len(sample[idx]) if idx >= 0 else 0
        if best is None or (hits, width) > best[:2]:
            best = (hits, width, d, idx)
    hits, _, used_delim, header_idx = best
    if hits == 0:
        sample = list(csv.reader(head_lines, delimiter=used_delim))
        raise ReadError(_missing_message(expected, sample))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=used_delim)
    header: list[str] = []
    header_line = 0
    rows, numbers, bad = [], [], []

    def add(cells: list[str], number: int, problem: object = _UNSEEN) -> None:
        if not "".join(cells).strip():
            return
        if problem is _UNSEEN:
            problem = _record_problem(cells, len(header), used_delim)
        if problem is None and len(cells) > len(header) and any(
                c.strip() for c in cells[len(header):]):
            problem = f"{len(cells)} cells for {len(header)} columns"
        if problem:
            raw = used_delim.join(shorten(c.replace("\x00", "\u2400")) for c in cells)
            bad.append((number, problem, raw))
            return
        cells = cells[: len(header)]
        cells = cells + [""] * (len(header) - len(cells))
        rows.append([c.strip() for c in cells])
        numbers.append(number)

    previous_end = 0
    for i, cells in enumerate(reader):
        start, previous_end = previous_end + 1, reader.line_num
        if i < header_idx:
            continue
        if i == header_idx:
            header, header_line = _clean_header(cells), reader.line_num
            continue
        problem = _record_problem(cells, len(header), used_delim)
        if problem and problem.startswith("an unterminated quote"):
            lines = lines or _LINE_END.split(text)
            bad.append((start, problem, shorten(lines[start - 1] if start <= len(lines)
                                                else "")))
            # the swallowed lines, one by one
            for n in range(start + 1, reader.line_num + 1):
                if n <= len(lines):
                    add(next(csv.reader([lines[n - 1]], delimiter=used_delim), []), n)
            continue
        add(cells, start, problem)
    return Table(header, rows, numbers, bad, used_encoding, used_delim, header_line)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e17:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def read_xlsx(data: bytes, expected: Iterable[str], sheet: str | int | None = None) -> Table:
    """Read an XLSX workbook; the sheet is the given one, else the first holding the headers."""
    from openpyxl import load_workbook

    expected = set(expected)
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException variants
        raise ReadError(f"not a readable XLSX workbook: {exc}") from exc
    try:
        if sheet is not None:
            names = wb.sheetnames
            name = names[sheet] if isinstance(sheet, int) else sheet
            if name not in names:
                raise ReadError(f"sheet {sheet!r} not found (sheets: {', '.join(names)})")
            sheets = [wb[name]]
        else:
            sheets = list(wb.worksheets)
        first_seen: list[list[str]] = []
        for ws in sheets:
            all_rows = [[_cell_text(v) for v in r] for r in ws.iter_rows(values_only=True)]
            first_seen = first_seen or all_rows
            idx, hits = _find_header(all_rows, expected)
            if hits == 0:
                continue
            header = _clean_header(all_rows[idx])
            width = len(header)
            rows, numbers = [], []
            for n, r in enumerate(all_rows[idx + 1 :], start=idx + 2):
                r = (r + [""] * width)[:width]
                if any(r):
                    rows.append(r)
                    numbers.append(n)
            return Table(header, rows, numbers, header_row=idx + 1)
        raise ReadError(_missing_message(expected, first_seen))
    finally:
        wb.close()


def _flatten(obj: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        elif isinstance(v, list):
            if all(not isinstance(x, (dict, list)) for x in v):
                out[key] = ", ".join(_cell_text(x) for x in v)
            else:
                out[key] = json.dumps(v, ensure_ascii=False, sort_keys=True)
        else:
            out[key] = _cell_text(v)
    return out


def _records(doc: object, records_path: str | None) -> list:
    if records_path:
        for part in records_path.split("."):
            if not isinstance(doc, dict) or part not in doc:
                raise ReadError(f"records_path '{records_path}': key '{part}' not found")
            doc = doc[part]
    elif isinstance(doc, dict):
        for key in ("results", "data", "items", "records"):
            if isinstance(doc.get(key), list):
                doc = doc[key]
                break
    if not isinstance(doc, list):
        raise ReadError("expected a JSON list of records (set records_path for nested lists)")
    return doc


def read_json(data: bytes, expected: Iterable[str], records_path: str | None = None) -> Table:
    """Read a JSON list of objects (or the list under `records_path`); nested keys are dotted."""
    text, _ = decode_text(data)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReadError(f"not valid JSON: {exc}") from exc
    items = _records(doc, records_path)
    columns: dict[str, None] = {}
    flat, numbers, bad = [], [], []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            bad.append((i, "record is not a JSON object", json.dumps(item)[:500]))
            continue
        f = _flatten(item)
        columns.update(dict.fromkeys(f))
        flat.append(f)
        numbers.append(i)
    expected = set(expected)
    if items and not expected & set(columns):
        raise ReadError(
            f"none of the mapped fields ({', '.join(sorted(expected))}) in the "
            f"records; fields seen: {', '.join(list(columns)[:12])}"
        )
    cols = list(columns)
    rows = [[f.get(c, "") for c in cols] for f in flat]
    return Table(cols, rows, numbers, bad, "utf-8")


def read_parquet(data: bytes, expected: Iterable[str]) -> Table:
    """Read a Parquet file; every value is turned into text like the other readers."""
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError variants
        raise ReadError(f"not a readable Parquet file: {exc}") from exc
    expected = set(expected)
    if len(df) and not expected & set(df.columns):
        raise ReadError(f"none of the mapped columns ({', '.join(sorted(expected))}) in the file")

    def text(v: object) -> str:
        if isinstance(v, (list, tuple)) or hasattr(v, "tolist"):
            items = v.tolist() if hasattr(v, "tolist") else v
            return ", ".join(_cell_text(x) for x in items)
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
            return ""
        return _cell_text(v)

    rows = [[text(v) for v in r] for r in df.itertuples(index=False, name=None)]
    return Table([str(c) for c in df.columns], rows, list(range(1, len(rows) + 1)))


def read_table(
    data: bytes,
    fmt: str,
    expected: Iterable[str],
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | int | None = None,
    records_path: str | None = None,
) -> Table:
    """Dispatch on format; a gzip or zip container is unpacked first, whatever the name
    says (an XLSX workbook is itself a zip: it is read as such)."""
    if fmt != "xlsx":
        data = unpack(data)
    if not data.strip():
        raise ReadError("empty payload")
    if fmt == "csv":
        return read_csv(data, expected, encoding, delimiter)
    if fmt == "xlsx":
        return read_xlsx(data, expected, sheet)
    if fmt == "json":
        return read_json(data, expected, records_path)
    if fmt == "parquet":
        return read_parquet(data, expected)
    raise ReadError(f"unknown format '{fmt}'")
