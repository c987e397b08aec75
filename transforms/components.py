"""The independent parts of a clustering, and a digest of what each part is made of.

The merge's rules join keys along a graph: a record and its SIRET, an ASP record's signature
and current SIRETs, analysts' "same" judgements, the matcher's edges. No rule joins or
refuses anything across two connected components of that graph, so each component clusters
alone, and a component whose records (key and whole content), edges and judgements are those
of an earlier run clusters as it did then. The digest of a component says exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from transforms.keys import identity_key, signature_link

# Tags that keep a node, a record, an edge and a judgement with equal hashes apart.
_NODE, _RECORD, _EDGE = np.uint64(0x1F83D9ABFB41BD6B), np.uint64(0x5BE0CD19137E2179), \
    np.uint64(0x6A09E667F3BCC909)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (a sum of mixed
    values then tells changed parts apart, where a sum of raw ones could cancel out)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(values: Sequence[str]) -> np.ndarray:
    return pd.util.hash_array(np.asarray(values, dtype=object))


@dataclass
class Parts:
    """The components of one set of records: their digests, and which component each
    record, matcher edge (-1: an edge the merge ignores) and key belongs to."""

    digests: list[str]
    record_part: np.ndarray
    edge_part: np.ndarray
    judged_nodes: list[str]  # keys that are places of their own through a judgement
    keys: np.ndarray  # every key of the graph
    labels: np.ndarray  # its component

    def part_of(self, chosen: np.ndarray) -> dict[str, int]:
        """key → component, for the keys of the components marked in `chosen`."""
        mask = chosen[self.labels]
        return dict(zip(self.keys[mask].tolist(), self.labels[mask].tolist(), strict=True))


def components(records: pd.DataFrame, row_digests: Sequence[int], edges: Sequence,
               judgements: Mapping[frozenset[str], str]) -> Parts:
    """The connected components of the merge's graph over these records (in the order of
    `records`), with `row_digests` a hash of each whole record and `edges` the matcher's
    (objects with left, right, score)."""
    sources, source_ids = records["source"].tolist(), records["source_id"].tolist()
    sirets = records["siret"].tolist()
    signatures = (records["siret_signature"].tolist() if "siret_signature" in records
                  else [None] * len(records))
    rkeys = [f"record:{s}:{i}" for s, i in zip(sources, source_ids, strict=True)]
    links: list[tuple[str, str]] = []
    for rk, siret, sig, s, i in zip(rkeys, sirets, signatures, sources, source_ids,
                                    strict=True):
        key, _ = identity_key(siret, s, i)
        if key != rk:
            links.append((rk, key))
        if signature_link(siret, sig):
            links.append((f"siret:{sig}", f"siret:{siret}"))
    present = set(rkeys)
    judged = sorted({k for pair, d in judgements.items() if d == "different" for k in pair})
    for pair, decision in judgements.items():
        a, b = sorted(pair)
        if decision == "same" and a in present and b in present:
            links.append((a, b))
    usable = np.fromiter((e.left in present and e.right in present for e in edges),
                         dtype=bool, count=len(edges))
    lefts = [e.left for e in edges]
    rights = [e.right for e in edges]

    codes, keys = pd.factorize(np.asarray(
        rkeys + [a for a, _ in links] + [b for _, b in links] + judged, dtype=object))
    keys = np.asarray(keys, dtype=object)
    n, r, m = len(keys), len(rkeys), len(links)
    record_code = codes[:r]
    index = pd.Index(keys)
    left_code, right_code = index.get_indexer(lefts), index.get_indexer(rights)
    u = np.concatenate([codes[r:r + m], left_code[usable]])
    v = np.concatenate([codes[r + m:r + 2 * m], right_code[usable]])
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)

    key_hash = _mix(_hash(keys))
    scores = np.asarray([e.score for e in edges], dtype=np.float64).view(np.uint64)
    edge_hash = _mix(key_hash[left_code[usable]] * np.uint64(3)
                     ^ key_hash[right_code[usable]] ^ _mix(scores[usable] ^ _EDGE))
    judged_items = [(k, "\t".join([*sorted(pair), d])) for pair, d in judgements.items()
                    for k in pair]
    judged_items = [(index.get_loc(k), text) for k, text in judged_items if k in index]
    item_part = np.concatenate([
        labels,  # every key
        labels[record_code],  # every record's content
        labels[left_code[usable]],  # every edge the merge uses
        labels[np.asarray([c for c, _ in judged_items], dtype=np.int64)],
    ])
    item_hash = np.concatenate([
        _mix(key_hash ^ _NODE),
        _mix(key_hash[record_code] ^ _mix(np.asarray(row_digests, dtype=np.uint64)
                                          ^ _RECORD)),
        edge_hash,
        _mix(_hash([text for _, text in judged_items])) if judged_items
        else np.zeros(0, dtype=np.uint64),
    ])
    order = np.argsort(item_part, kind="stable")
    digests = []
    if len(order):  # no records and no judged key: no component
        starts = np.flatnonzero(np.r_[True, np.diff(item_part[order]) != 0])
        sums = np.add.reduceat(item_hash[order], starts)
        xors = np.bitwise_xor.reduceat(item_hash[order], starts)
        sizes = np.diff(np.r_[starts, len(order)])
        digests = [f"{s:016x}{x:016x}{z:x}" for s, x, z in
                   zip(sums.tolist(), xors.tolist(), sizes.tolist(), strict=True)]
    assert len(digests) == count  # every component holds at least its keys
    edge_part = np.full(len(edges), -1, dtype=np.int64)
    edge_part[usable] = labels[left_code[usable]]
    return Parts(digests, labels[record_code], edge_part, judged, keys, labels)
