"""Matching once per commune: every block holds records of one commune (its code INSEE, else
its postcode), so the scored pairs of a commune whose records are all unchanged are the pairs
the last consolidation found. A commune's digest covers its records' keys and row digests, the
thresholds and the matcher's code; the pairs are kept with the records' keys, not positions.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

# (key a, key b, score, band, features, pair digest): one scored pair, by the records' keys;
# the pair digest (pair_digest) says which versions of the two records were scored. Pairs
# below the review band are kept too (band "distinct", no features): in a commune scored
# again, a pair whose records are both unchanged is taken from here, not scored.
KeyedPair = tuple[str, str, float, str, dict | None, str]


def pair_digest(salt: str, left: str, right: str) -> str:
    """What a pair's score depends on: both records (key and row digest, as `left` and
    `right`) and `salt` (the thresholds, the matcher's code)."""
    return hashlib.blake2b(f"{salt}\n{left}\n{right}".encode(),
                           digest_size=12).hexdigest()


def known_pairs(cached: Mapping[str, tuple[str, list]], stale: set[str]
                ) -> dict[str, tuple[float, str, dict | None]]:
    """pair digest → (score, band, features) of the cached pairs of the communes to score
    again (entries from before pair digests have none: their pairs are scored)."""
    out = {}
    for commune in stale:
        if commune in cached:
            for pair in cached[commune][1]:
                if len(pair) > 5:
                    out[pair[5]] = (pair[2], pair[3], pair[4])
    return out


def commune_keys(records: pd.DataFrame) -> list[str | None]:
    """The commune part of each record's blocks (transforms.matching): the code INSEE, else
    the postcode; None when neither is there (such a record is in no block)."""
    out = []
    for insee, postcode in zip(records["code_insee"], records["code_postal"], strict=True):
        value = insee if isinstance(insee, str) and insee else postcode
        out.append(value if isinstance(value, str) and value else None)
    return out


def commune_digests(communes: Sequence[str | None], keys: Sequence[str],
                    row_digests: Iterable[object], salt: str) -> dict[str, str]:
    """A digest per commune of its records (their keys and row digests) and of `salt` (what
    else the pairs depend on: the thresholds, the matcher's code)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for commune, key, row in zip(communes, keys, row_digests, strict=True):
        if commune is not None:
            groups[commune].append(f"{key}\t{row}")
    return {c: hashlib.blake2b("\n".join([salt, *sorted(members)]).encode("utf-8"),
                               digest_size=16).hexdigest()
            for c, members in groups.items()}


def stale_communes(digests: Mapping[str, str], cached: Mapping[str, tuple[str, list]]
                   ) -> set[str]:
    """The communes to score again: new ones, and those whose digest changed."""
    return {c for c, d in digests.items() if c not in cached or cached[c][0] != d}


def reused_pairs(digests: Mapping[str, str], cached: Mapping[str, tuple[str, list]],
                 stale: set[str], position: Mapping[str, int]
                 ) -> list[tuple[int, int, float, str, dict]]:
    """The cached pairs of the unchanged communes, at the records' positions."""
    out = []
    for commune in digests:
        if commune in stale:
            continue
        for a, b, score, band, features, *_ in cached[commune][1]:
            if band != "distinct":
                out.append((position[a], position[b], score, band, features))
    return out


def new_entries(digests: Mapping[str, str], stale: set[str], communes: Sequence[str | None],
                keys: Sequence[str], scored: Iterable[tuple[int, int, float, str, dict | None]],
                pair_digests: Sequence[str]) -> dict[str, tuple[str, list[KeyedPair]]]:
    """The cache entries of the communes scored again (with no pair, an empty list: they
    are skipped next time too); `pair_digests`: each scored pair's, in order."""
    out: dict[str, tuple[str, list[KeyedPair]]] = {c: (digests[c], []) for c in stale}
    for (i, j, score, band, features), digest in zip(scored, pair_digests, strict=True):
        commune = communes[i]
        if commune in out:
            out[commune][1].append((keys[i], keys[j], score, band, features, digest))
    return out
