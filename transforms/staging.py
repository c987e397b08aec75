"""Staging: one source's table of strings → canonical records, rejects and warnings.

A row is rejected (kept in `ops.rejects` with its reason) when it cannot be a structure on the
map: no name, an invalid SIRET (it could duplicate another source's record), no kind, or a kind
that is not published. A field that is wrong but not essential (phone, e-mail, postcode…) is
dropped from the record with a warning, and the row is kept.

The checks and normalisation run a column at a time (transforms/staging_columns.py); this
module puts the rows' outcomes together in file order, replays the rows a memo knows, and
rejects a repeated source_id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pandas as pd

from transforms.places import CommuneIndex
from transforms.readers import Table
from transforms.spec import SourceSpec
from transforms.staging_columns import (  # noqa: F401 - parse_date: part of this API
    RECORD_COLUMNS,
    Issue,
    Normalisers,
    RowOutcome,
    parse_date,
    stage_rows,
)
from transforms.text import shorten

ISSUE_COLUMNS = ["source", "row_number", "field", "value", "reason", "detail", "raw"]


class StageError(ValueError):
    """The table does not fit the source's declared mapping (a mapped column disappeared)."""


@dataclass
class Staged:
    records: pd.DataFrame  # (a pyarrow Table once a forked process made it for the write)
    rejects: pd.DataFrame
    warnings: pd.DataFrame
    unmapped_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    reused: int = 0  # rows whose outcome was replayed from the last staging (RowMemo)


# A row's outcome: its rejects and warnings as (field, value, reason, detail), its record
# (None when rejected) and the record's source_id.
Outcome = tuple[list, list, list | None, str | None]
_ROW_NUMBER = RECORD_COLUMNS.index("row_number")
_SOURCE_ID = RECORD_COLUMNS.index("source_id")


@dataclass
class RowMemo:
    """The outcome of every row a source's staging read, by a digest of the row's values.
    Valid for one `fingerprint`: the source's mapping, the code, the communes reference, the
    published kinds and the libraries that validate values; the caller keeps it between
    stagings and drops it when the fingerprint differs."""

    fingerprint: str
    known: dict[bytes, Outcome] = field(default_factory=dict)  # from the last staging
    kept: dict[bytes, Outcome] = field(default_factory=dict)  # this staging's rows

    @staticmethod
    def key(values) -> bytes:
        """The digest of one row's values, in the file's column order."""
        try:
            text = "\x1f".join(values)  # rows are strings; a reader's other values: repr
        except TypeError:
            text = "\x1f".join(v if type(v) is str else repr(v) for v in values)
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, key: bytes) -> Outcome | None:
        return self.known.get(key)

    def keep(self, key: bytes, outcome: Outcome) -> None:
        self.kept[key] = outcome


def stage_table(
    table: Table, spec: SourceSpec, communes: CommuneIndex, kinds: tuple[str, ...],
    memo: RowMemo | None = None,
) -> Staged:
    """Map, normalise and validate every row of `table` for source `spec`. With a `memo`,
    the rows it knows are replayed, and every row's outcome is kept in it."""
    columns = spec.mapping
    missing = [c for c in columns.values() if c not in table.columns]
    if missing:
        # a JSON field holding objects is read as its members' columns ("adresse.rue"):
        # say so, since the list of columns below may not reach them
        nested = [f"{m!r} holds objects, read as {', '.join(repr(c) for c in inner[:5])}"
                  for m in missing
                  for inner in [[c for c in table.columns if c.startswith(f"{m}.")]] if inner]
        raise StageError(
            f"source '{spec.name}': mapped column(s) {', '.join(repr(m) for m in missing)} "
            f"not in the file (columns: {', '.join(table.columns[:20])})"
            + "".join(f"; {n}: map one of them" for n in nested)
        )
    mapped = set(columns.values())
    unmapped = [c for c in table.columns if c not in mapped and c not in spec.ignore_columns]
    norm = Normalisers(spec, communes, kinds)
    records, rejects, warnings = [], [], []
    seen_ids: dict[str, int] = {}
    for number, reason, raw_text in table.bad_rows:
        rejects.append([spec.name, number, None, None, "ligne_illisible", reason, raw_text])
    # A row staged before, with the same mapping, code and reference, stages the same: its
    # outcome is replayed (a 1% edit of a national file re-stages 1% of it). Not a row whose
    # outcome depends on its place in the file (the reader's notes).
    keys = [None if memo is None or number in table.row_notes else memo.key(row)
            for number, row in zip(table.row_numbers, table.rows, strict=True)]
    known = [None if key is None else memo.get(key) for key in keys]
    fresh = [i for i, hit in enumerate(known) if hit is None]
    staged = dict(zip(fresh, _stage(norm, table, fresh), strict=True))
    reused = 0
    for i, (number, row, key, hit) in enumerate(zip(table.row_numbers, table.rows, keys,
                                                     known, strict=True)):
        if hit is not None and (hit[3] is None or hit[3] not in seen_ids):
            _replay(hit, spec.name, number, row, table.columns, records, rejects, warnings)
            if hit[3] is not None:
                seen_ids[hit[3]] = number
            memo.keep(key, hit)
            reused += 1
            continue
        # a known row whose source_id an earlier row now takes is staged afresh: a doublon
        got = staged.get(i) or _stage(norm, table, [i])[0]
        made = _place(got, spec.name, number, row, table.columns, seen_ids, records, rejects,
                      warnings)
        if key is not None and made is not None:
            memo.keep(key, made)
    rows_read = len(table.rows) + len(table.bad_rows)
    if len(records) + len(rejects) != rows_read:
        # every row read is a record or a reject: nothing may vanish without a word
        raise StageError(f"source '{spec.name}': {rows_read} rows read but {len(records)} "
                         f"kept and {len(rejects)} rejected")
    return Staged(
        records=pd.DataFrame(records, columns=RECORD_COLUMNS, dtype=object),
        rejects=pd.DataFrame(rejects, columns=ISSUE_COLUMNS, dtype=object),
        warnings=pd.DataFrame(warnings, columns=ISSUE_COLUMNS, dtype=object),
        unmapped_columns=unmapped,
        rows_read=rows_read,
        reused=reused,
    )


def _stage(norm: Normalisers, table: Table, rows: list[int]) -> list[RowOutcome]:
    """The outcomes of the rows at these indexes of `table`."""
    return stage_rows(norm, table.columns, [table.rows[i] for i in rows],
                      [table.row_numbers[i] for i in rows], table.row_notes)


def _issue_row(source: str, number: int, issue: Issue, raw_json: str) -> list:
    return [source, number, issue.field, issue.value, issue.reason, issue.detail, raw_json]


def _raw_json(columns: list[str], row) -> str:
    """A row as read, as the JSON its rejects and warnings keep (each value shortened)."""
    return json.dumps({k: shorten(v) for k, v in zip(columns, row, strict=True)},
                      ensure_ascii=False)


def _replay(hit: Outcome, source: str, number: int, row, columns: list[str], records: list,
            rejects: list, warnings: list) -> None:
    """Append a known row's outcome under its row number of today."""
    issues_r, issues_w, record, _ = hit
    if issues_r or issues_w:
        raw_json = _raw_json(columns, row)
        rejects.extend([source, number, *i, raw_json] for i in issues_r)
        warnings.extend([source, number, *i, raw_json] for i in issues_w)
    if record is not None:
        record = list(record)
        record[_ROW_NUMBER] = number
        records.append(record)


def _place(got: RowOutcome, source: str, number: int, row, columns: list[str],
           seen_ids: dict[str, int], records: list, rejects: list,
           warnings: list) -> Outcome | None:
    """Append a row's fresh outcome, rejected as a doublon when an earlier row has its
    source_id. Returns what the memo keeps of it: None for a doublon, which depends on the
    rows before it."""
    doublon = not got.rejected and got.source_id in seen_ids
    issues = got.before if got.rejected or doublon else got.before + got.after
    raw_json = _raw_json(columns, row) if issues or doublon else None
    for issue in issues:
        (rejects if issue.kind == "r" else warnings).append(
            _issue_row(source, number, issue, raw_json))
    if doublon:
        rejects.append([source, number, "source_id", got.given_id, "doublon",
                        f"same source_id as row {seen_ids[got.source_id]}", raw_json])
        return None
    if not got.rejected:
        seen_ids[got.source_id] = number
        records.append(got.record)
    return ([[i.field, i.value, i.reason, i.detail] for i in issues if i.kind == "r"],
            [[i.field, i.value, i.reason, i.detail] for i in issues if i.kind == "w"],
            got.record, got.source_id)


def drop_refused(source: str, kept: int, last_kept: int | None, max_drop_share: float
                 ) -> str | None:
    """Why a staging keeping `kept` usable rows must not replace the last good one, which kept
    `last_kept`: it lost more than `max_drop_share` of them (a cut-off download, a partial
    export, a file rewritten while it was read). None when it may."""
    if not last_kept or max_drop_share >= 1 or kept >= (1 - max_drop_share) * last_kept:
        return None
    return (f"source '{source}': {kept:,} usable rows, {1 - kept / last_kept:.0%} fewer than "
            f"the last good staging's {last_kept:,} (expect.max_drop_share = "
            f"{max_drop_share:.0%}): refused as a cut-off or partial export; last good data "
            f"kept. If the drop is real, raise expect.max_drop_share for this source (1 turns "
            f"the check off) and sync again")
