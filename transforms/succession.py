"""New source records that take over the ID of a record that vanished from the same source.

A source without ids of its own (a network's spreadsheet) gets a hash of the row as
`source_id`, so correcting a phone number turns the row into a "new" record while the old one
vanishes. When nothing else identifies the place (no SIRET, no other source), it would get a
new `structure_id`, and map sites would see one structure removed and another added. Here a
new record that the matcher scores as the same place as a vanished record of the same source,
on name, address and distance, inherits that record's ID.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from transforms.frames import rows_of
from transforms.keys import identity_keys
from transforms.matching import candidate_pairs, features, score
from transforms.merge import identity_key, record_key
from transforms.settings import MatchingSettings


@dataclass(frozen=True)
class Succession:
    new_key: str  # record key of the new record
    old_key: str  # record key of the vanished one
    structure_id: str  # the ID the new record inherits
    score: float


Rows = pd.DataFrame | Sequence[Mapping]


def _column(rows: Rows, name: str) -> list:
    if isinstance(rows, pd.DataFrame):
        return rows[name].tolist() if name in rows.columns else [None] * len(rows)
    return [r.get(name) for r in rows]


def _subset(rows: Rows, positions: list[int]) -> list[Mapping]:
    """The rows at these positions, as mappings (only those are turned into dicts)."""
    if isinstance(rows, pd.DataFrame):
        return rows_of(rows.iloc[positions])
    return [rows[i] for i in positions]


def _row_keys(rows: Rows) -> tuple[list[str], list[str]]:
    """Each row's record key and identity key (the same key for a row without a usable
    SIRET), read from the columns: a national run has a million rows, and a set per row
    cost seconds."""
    if isinstance(rows, pd.DataFrame):
        return identity_keys(rows)
    sources, ids = _column(rows, "source"), _column(rows, "source_id")
    records = list(map(record_key, sources, ids))
    identities = [identity_key(siret, s, i)[0] for siret, s, i in zip(
        _column(rows, "siret"), sources, ids, strict=True)]
    return records, identities


def successions(previous: Rows, current: Rows, known: Mapping[str, str],
                thresholds: MatchingSettings) -> list[Succession]:
    """Pairs (new record, vanished record) of one source judged the same place.

    previous: the records of the last consolidation, each with the `structure_id` it was
    published under; current: this one's (rows or frames); known: the persisted key →
    structure_id map. Only records nothing identifies are candidates: a new record none of
    whose keys is known, and a vanished record whose ID no current key claims (its place would
    otherwise disappear). Pairs are taken best score first, each record at most once.
    """
    if not len(previous) or not len(current):
        return []
    current_records, current_identities = _row_keys(current)
    current_keys = set(current_records)
    current_keys.update(current_identities)
    gone: list[tuple[int, str, str]] = []  # (position, record key, the ID it had)
    for pos, (source, source_id, sid) in enumerate(zip(
            _column(previous, "source"), _column(previous, "source_id"),
            _column(previous, "structure_id"), strict=True)):
        key = record_key(source, source_id)
        # The ID it had last time, which a split may have changed since its key was stored.
        sid = sid if isinstance(sid, str) and sid else known.get(key)
        if key not in current_keys and sid is not None:
            gone.append((pos, key, sid))
    # Of the IDs the vanished records had, those a current key still claims: only these IDs
    # are looked for among the known keys (a handful), not every current key's ID.
    wanted = {sid for _, _, sid in gone}
    claimed = {sid for k, sid in known.items() if sid in wanted and k in current_keys} \
        if wanted else set()
    vanished_at = [pos for pos, _, sid in gone if sid not in claimed]
    last_id = {key: sid for _, key, sid in gone if sid not in claimed}
    vanished: dict[str, list[Mapping]] = defaultdict(list)
    for r in _subset(previous, vanished_at):
        vanished[r["source"]].append(r)
    fresh_at = [pos for pos, (source, rk, ik) in enumerate(zip(
        _column(current, "source"), current_records, current_identities, strict=True))
        if source in vanished and rk not in known and ik not in known]
    fresh: dict[str, list[Mapping]] = defaultdict(list)
    for r in _subset(current, fresh_at):
        fresh[r["source"]].append(r)

    scored = []
    for source in sorted(fresh):
        old, new = vanished[source], fresh[source]
        both = old + new
        for i, j in candidate_pairs(both):
            if i < len(old) <= j:  # one vanished, one new
                # Contacts are left out: they are what a source edits most, and a changed
                # phone must not make a new place; name and address must still agree.
                value = score({**features(both[i], both[j]), "contact": None})
                if value >= thresholds.merge_threshold:
                    scored.append((value, record_key(source, both[j]["source_id"]),
                                   record_key(source, both[i]["source_id"])))
    out, used = [], set()
    for value, new_key, old_key in sorted(scored, key=lambda t: (-t[0], t[1], t[2])):
        if new_key in used or old_key in used:
            continue
        used |= {new_key, old_key}
        out.append(Succession(new_key, old_key, last_id[old_key], value))
    return sorted(out, key=lambda s: s.new_key)


def carry_judgements(judgements: Mapping[frozenset[str], str],
                     renamed: Sequence[tuple[str, str]]) -> dict[frozenset[str], str]:
    """Judgements made on a record also bind the records that succeeded it.

    renamed: (old_key, new_key) in the order they happened (a chain old → new → newer is
    followed). A judgement naming the record under either key applies; a decision stated on
    the new key itself wins over the one inherited.
    """
    successor: dict[str, str] = {}
    for old, new in renamed:
        successor[old] = new

    def latest(key: str) -> str:
        seen = set()
        while key in successor and key not in seen:
            seen.add(key)
            key = successor[key]
        return key

    out = dict(judgements)
    for pair, decision in judgements.items():
        moved = frozenset(latest(k) for k in pair)
        if moved != pair and len(moved) == 2:
            out.setdefault(moved, decision)
    return out
