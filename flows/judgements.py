"""Analysts' judgements on pairs of records, kept in a CSV file meant for version control.

One line per decision: `left_source,left_source_id,right_source,right_source_id,decision,
decided_at,author,note`, decision being same, different or unsure. The file is append-only:
the newest line about a pair wins. Judgements are applied on every run before any threshold.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path

from transforms.merge import record_key

COLUMNS = ("left_source", "left_source_id", "right_source", "right_source_id", "decision",
           "decided_at", "author", "note")
DECISIONS = ("same", "different", "unsure")


class JudgementError(ValueError):
    """A judgements file line that cannot be used; the message names the file and line."""


def read_rows(path: Path | None) -> list[dict]:
    """Every line of the file (none when it does not exist yet)."""
    if path is None or not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS[:5] if c not in (reader.fieldnames or [])]
        if missing:
            raise JudgementError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for n, row in enumerate(reader, start=2):
            if row["decision"] not in DECISIONS:
                raise JudgementError(f"{path}, line {n}: decision {row['decision']!r} is not "
                                     f"one of {', '.join(DECISIONS)}")
            rows.append(row)
    return rows


def load_judgements(path: Path | None) -> dict[frozenset[str], str]:
    """Pair of record keys → the newest decision about it."""
    out: dict[frozenset[str], str] = {}
    for row in read_rows(path):
        pair = frozenset({record_key(row["left_source"], row["left_source_id"]),
                          record_key(row["right_source"], row["right_source_id"])})
        out[pair] = row["decision"]
    return out


def append_judgement(path: Path, left: tuple[str, str], right: tuple[str, str],
                     decision: str, note: str = "") -> dict:
    """Add a decision at the end of the file (created with its header when absent)."""
    if decision not in DECISIONS:
        raise JudgementError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    row = {"left_source": left[0], "left_source_id": left[1], "right_source": right[0],
           "right_source_id": right[1], "decision": decision,
           "decided_at": dt.datetime.now().isoformat(timespec="seconds"),
           "author": os.environ.get("SIAE_ANALYST") or os.environ.get("USER", ""), "note": note}
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    return row
