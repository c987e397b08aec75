"""Partitions of the records for matching: blocks never cross communes, so records grouped
by département can be scored apart (one task each, on any worker) with the same pairs as one
pass over them all."""

from __future__ import annotations

import heapq

import pandas as pd


def departement_key(commune: str | None) -> str | None:
    """The département part of a block's commune key (a code INSEE, else a postcode):
    three characters overseas (97x), two elsewhere. Equal keys for every record of a block."""
    if not commune:
        return None
    return commune[:3] if commune.startswith("97") else commune[:2]


def partition_rows(records: pd.DataFrame, count: int) -> list[list[int]]:
    """At most `count` lists of row positions, each holding whole départements, balanced by
    record count (largest first, onto the lightest partition). Records with no commune have
    no block and are left out: they are never candidates. Deterministic for given input."""
    if records.empty:
        return []
    commune = records["code_insee"].where(records["code_insee"].notna() &
                                          (records["code_insee"] != ""), records["code_postal"])
    keys = [departement_key(c if isinstance(c, str) else None) for c in commune]
    groups: dict[str, list[int]] = {}
    for pos, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(pos)
    count = max(1, min(count, len(groups)))
    bins: list[list[int]] = [[] for _ in range(count)]
    heap = [(0, i) for i in range(count)]
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        load, i = heapq.heappop(heap)
        bins[i].extend(groups[key])
        heapq.heappush(heap, (load + len(groups[key]), i))
    return [sorted(b) for b in bins if b]
