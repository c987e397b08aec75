"""What must hold of a consolidation before it is published.

One place, one SIRET: a structure whose records carry two different usable SIRETs would put
two establishments (siblings of one organisation, often) on one point. It is allowed only
when a known succession links the SIRETs: the ASP's signature and current SIRET of one
convention, or an analyst's "same" judgement between records that carry them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from transforms.identifiers import is_placeholder_siret
from transforms.keys import record_key


def siret_conflicts(records: Iterable[dict], same_pairs: Iterable[frozenset[str]]
                    ) -> list[tuple[str, list[str]]]:
    """(structure_id, its SIRETs) for every structure holding SIRETs no succession links.

    records: dicts with structure_id, source, source_id, siret, siret_signature;
    same_pairs: pairs of record keys ("record:<source>:<id>") an analyst judged the same.
    """
    by_structure: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_structure[r["structure_id"]].append(r)
    same = {frozenset(p) for p in same_pairs}
    out = []
    for sid, members in sorted(by_structure.items()):
        sirets = {r["siret"] for r in members
                  if r.get("siret") and not is_placeholder_siret(r["siret"])}
        if len(sirets) < 2:
            continue
        keys = {record_key(r["source"], r["source_id"]): r.get("siret") for r in members}
        links = [(r.get("siret_signature"), r.get("siret")) for r in members]  # the ASP's
        links += [(keys[a], keys[b]) for a, b in map(tuple, same) if a in keys and b in keys]
        if not _connected(sirets, links):
            out.append((sid, sorted(sirets)))
    return out


def _connected(nodes: set[str], links: list[tuple]) -> bool:
    parent = {n: n for n in nodes}

    def find(n):
        while parent[n] != n:
            n = parent[n]
        return n

    for a, b in links:
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    return len({find(n) for n in nodes}) == 1
