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
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from transforms.keys import TEXT, given, identity_columns, joined, placeholders, text_column

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
    # not categorized: the keys are distinct, and factorizing them first took a second at 1M
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


@dataclass
class Parts:
    """The components of one set of records: their digests, and which component each
    record, matcher edge (-1: an edge the merge ignores) and judged key belongs to. The
    graph's keys are not kept: at 1M, a million and a half of them as Python strings (and
    a dict of them) were 200 MB more at the merge's peak."""

    digests: list[bytes]
    record_part: np.ndarray
    edge_part: np.ndarray
    judged_nodes: list[str]  # keys that are places of their own through a judgement
    judged_part: np.ndarray  # their component


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, type=TEXT)


def _below(codes: np.ndarray, known: int) -> np.ndarray:
    """Whether each code is one of the first `known` keys' (-1: no key)."""
    return (codes >= 0) & (codes < known)


def _code_in(values: pa.Array, keys: pa.Array) -> np.ndarray:
    """Each value's position in `keys` (-1 when absent)."""
    return pc.fill_null(pc.index_in(values, value_set=keys), -1).to_numpy(
        zero_copy_only=False).astype(np.int64)


def _record_links(records: pd.DataFrame) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Each record's key, and the links the merge's first two rules make, in record order
    (per record: to its SIRET's key, then its signature's to its SIRET's): identity_key()
    and signature_link() column by column (a call per record took 4 s at 1M)."""
    rkeys, siret_keys, to_siret = identity_columns(records)
    sirets, signatures = text_column(records, "siret"), text_column(records, "siret_signature")
    signature_keys = joined("siret", signatures)
    signed = (given(signatures) & given(sirets) & ~placeholders(signatures)
              & ~pc.fill_null(pc.equal(signatures, sirets), False).to_numpy(
                  zero_copy_only=False))
    # two link slots per record, in record order, the unused ones dropped
    n = len(records)
    slot = np.stack([np.arange(n), np.arange(n) + n], axis=1).ravel()
    slot = pa.array(slot[np.stack([to_siret, signed], axis=1).ravel()])
    left = pa.concat_arrays([rkeys, signature_keys]).take(slot)
    right = pa.concat_arrays([siret_keys, siret_keys]).take(slot)
    return rkeys, left, right


def components(records: pd.DataFrame, row_digests: Sequence[int], edges: Sequence,
               judgements: Mapping[frozenset[str], str]) -> Parts:
    """The connected components of the merge's graph over these records (in the order of
    `records`), with `row_digests` a hash of each whole record and `edges` the matcher's
    (objects with left, right, score)."""
    rkeys, lefts_of_links, rights_of_links = _record_links(records)
    judged = sorted({k for pair, d in judgements.items() if d == "different" for k in pair})
    # the keys in order of first appearance (records, link ends, judged keys), each a code:
    # the records' keys come first, so a key is a record's when its code is below `known`
    encoded = pa.concat_arrays([rkeys, lefts_of_links, rights_of_links, _strings(judged)]
                               ).dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    # the keys as Python strings only while they are hashed: made and dropped in one go,
    # they leave no memory behind
    key_hash = _mix(_hash(encoded.dictionary.to_numpy(zero_copy_only=False)))
    n, r, m = len(encoded.dictionary), len(rkeys), len(lefts_of_links)
    record_code = codes[:r]
    known = int(record_code.max()) + 1 if r else 0

    # every other key looked up at once: a lookup hashes the whole dictionary first
    same = [sorted(pair) for pair, decision in judgements.items() if decision == "same"]
    judged_items = [(k, "\t".join([*sorted(pair), d])) for pair, d in judgements.items()
                    for k in pair]
    s, e = len(same), len(edges)
    found = _code_in(_strings([*(a for a, _ in same), *(b for _, b in same),
                               *(x.left for x in edges), *(x.right for x in edges),
                               *(k for k, _ in judged_items)]), encoded.dictionary)
    same_left, same_right = found[:s], found[s:2 * s]
    left_code, right_code = found[2 * s:2 * s + e], found[2 * s + e:2 * s + 2 * e]
    judged_code = found[2 * s + 2 * e:]
    same_in = _below(same_left, known) & _below(same_right, known)
    usable = _below(left_code, known) & _below(right_code, known)
    u = np.concatenate([codes[r:r + m], same_left[same_in], left_code[usable]])
    v = np.concatenate([codes[r + m:r + 2 * m], same_right[same_in], right_code[usable]])
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)

    scores = np.asarray([x.score for x in edges], dtype=np.float64).view(np.uint64)
    edge_hash = _mix(key_hash[left_code[usable]] * np.uint64(3)
                     ^ key_hash[right_code[usable]] ^ _mix(scores[usable] ^ _EDGE))
    judged_items = [(c, text) for c, (_, text) in zip(judged_code.tolist(), judged_items,
                                                      strict=True) if c >= 0]
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
        # 24 bytes per component (sum, xor, size), made in one go: a text per component
        # took 0.8 s at 1M (numpy's bytes drop trailing zero bytes, which keeps them apart)
        digests = np.stack([sums, xors, sizes.astype(np.uint64)], axis=1).view("S24"
                                                                              ).ravel().tolist()
    assert len(digests) == count  # every component holds at least its keys
    edge_part = np.full(len(edges), -1, dtype=np.int64)
    edge_part[usable] = labels[left_code[usable]]
    return Parts(digests, labels[record_code], edge_part, judged,
                 labels[codes[r + 2 * m:]])
