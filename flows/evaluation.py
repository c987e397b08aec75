"""Reading the labelled pairs file that the matcher is evaluated on."""

from __future__ import annotations

import csv
from pathlib import Path

from transforms.fields import BY_NAME, REVIEWED


def _value(field: str, text: str | None) -> object:
    if not text:
        return [] if BY_NAME[field].type == "list" else None
    kind = BY_NAME[field].type
    if kind == "number":
        return float(text)
    if kind == "list":
        return [t.strip() for t in text.replace("|", ",").split(",") if t.strip()]
    return text


def read_labelled_pairs(path: Path) -> list[tuple[str, str, dict, dict]]:
    """(label, kind, left record, right record) per line of a pairs CSV
    (scripts/make_matching_pairs.py writes one); the reviewed fields absent from the file are
    empty."""
    def side(row: dict, prefix: str) -> dict:
        return {f: _value(f, row.get(f"{prefix}_{f}")) for f in REVIEWED}

    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["label"], r["kind"], side(r, "left"), side(r, "right"))
                for r in csv.DictReader(fh)]
