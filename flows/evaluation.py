"""Reading the labelled pairs file that the matcher is evaluated on."""

from __future__ import annotations

import csv
from pathlib import Path

FIELDS = ("siret", "nom", "adresse", "code_postal", "commune", "code_insee", "telephone",
          "courriel", "site_web", "latitude", "longitude")


def read_labelled_pairs(path: Path) -> list[tuple[str, str, dict, dict]]:
    """(label, kind, left record, right record) per line of a pairs CSV
    (scripts/make_matching_pairs.py writes one)."""
    def side(row: dict, prefix: str) -> dict:
        out = {}
        for f in FIELDS:
            value = row.get(f"{prefix}_{f}") or None
            out[f] = float(value) if value is not None and f in ("latitude", "longitude") \
                else value
        return out

    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["label"], r["kind"], side(r, "left"), side(r, "right"))
                for r in csv.DictReader(fh)]
