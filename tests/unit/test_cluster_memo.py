"""Clustering again only the components whose inputs changed gives what a clustering of
every record gives: same places, golden records, links, IDs, redirects and held pairs."""

import datetime as dt
import random

import numpy as np
import pandas as pd
import pytest
from stdnum import luhn

import transforms.merge
from tests.unit.test_merge import rec
from transforms.components import _record_links, components
from transforms.keys import identity_key, identity_keys, signature_link
from transforms.merge import (
    ClusterMemo,
    Edge,
    Spread,
    component_batches,
    component_groups,
    merge_records,
    record_key,
)

PRIORITY = {"asp": 65, "emplois": 55, "reseau": 40}


def digests(records: pd.DataFrame) -> list[int]:
    """A hash of each whole record, as DuckDB's hash(row) is in the pipeline."""
    return pd.util.hash_pandas_object(records.astype(str), index=False).tolist()


def frame(rows) -> pd.DataFrame:
    return (pd.DataFrame(rows, dtype=object).sort_values(["source", "source_id"])
            .reset_index(drop=True))


def assert_same(a, b):
    pd.testing.assert_frame_equal(a.structures, b.structures)
    pd.testing.assert_frame_equal(a.links, b.links)
    assert a.ids == b.ids
    assert a.redirects == b.redirects
    assert a.demoted == b.demoted


def run(records, memo, known=None, edges=(), judgements=None, first_seen=None):
    """(the clustering from the memo, the one from nothing), and the memo for the next."""
    known = known or {}
    incremental = merge_records(records, PRIORITY, known, edges, judgements, first_seen,
                                memo=memo, row_digests=digests(records))
    full = merge_records(records, PRIORITY, known, edges, judgements, first_seen)
    assert_same(incremental, full)
    return incremental, ClusterMemo(known=memo.kept)


SIRET_A, SIRET_B = "19070916200019", "42385519600014"
BASE = [
    rec("asp", "1", SIRET_A, siret_signature=SIRET_B),
    rec("emplois", "a", SIRET_A),
    rec("emplois", "b", SIRET_B, telephone="+33465711234"),
    rec("reseau", "x", None, nom="Recyclerie"),
    rec("emplois", "c", "34255976200048", nom="Recyclerie"),
    rec("reseau", "y", None, nom="Jardins"),
]
X, C, Y = record_key("reseau", "x"), record_key("emplois", "c"), record_key("reseau", "y")
EDGES = [Edge(C, X, 0.93)]


def test_an_unchanged_set_is_taken_whole_from_the_memo():
    records = frame(BASE)
    first, memo = run(records, ClusterMemo(), edges=EDGES)
    again = ClusterMemo(known=memo.known)
    second, _ = run(records, again, first.ids, EDGES)
    assert (again.reused, again.clustered) == (3, 0)  # asp+a+b, c+x, y
    assert list(second.structures["structure_id"]) == list(first.structures["structure_id"])


def test_an_edited_record_reclusters_its_component_only():
    first, memo = run(frame(BASE), ClusterMemo(), edges=EDGES)
    edited = frame([*BASE[:2], rec("emplois", "b", SIRET_B, telephone="+33465719999"),
                    *BASE[3:]])
    second, _ = run(edited, memo, first.ids, EDGES)
    assert (memo.reused, memo.clustered) == (2, 1)
    assert "+33465719999" in set(second.structures["telephone"])


@pytest.mark.parametrize("change", ["new record", "removed record", "new edge",
                                    "edge score", "different", "same", "judged key alone"])
def test_a_change_of_the_graph_equals_a_clustering_from_nothing(change):
    first, memo = run(frame(BASE), ClusterMemo(), edges=EDGES)
    records, edges, judgements = list(BASE), list(EDGES), {}
    if change == "new record":
        records.append(rec("reseau", "z", None, nom="Jardins"))
        edges.append(Edge(Y, record_key("reseau", "z"), 0.95))
    elif change == "removed record":
        records = [r for r in records if r["source_id"] != "x"]
    elif change == "new edge":
        edges.append(Edge(C, Y, 0.91))
    elif change == "edge score":
        edges = [Edge(C, X, 0.97)]
    elif change == "different":
        judgements = {frozenset((C, X)): "different"}
    elif change == "same":
        judgements = {frozenset((X, Y)): "same"}
    else:
        judgements = {frozenset(("record:gone:1", "record:gone:2")): "different"}
    run(frame(records), memo, first.ids, edges, judgements)
    assert memo.clustered >= 1  # the change was seen


@pytest.mark.parametrize("judgements", [{}, {frozenset(("record:a:1", "record:b:1")):
                                              "different"}], ids=["nothing", "judged keys"])
def test_no_records_at_all(judgements):
    empty = pd.DataFrame(columns=frame(BASE).columns, dtype=object)
    run(empty, ClusterMemo(), judgements=judgements)


def test_the_components_of_the_merge_graph():
    records = frame(BASE)
    parts = components(records, digests(records), EDGES, {})
    by_key = dict(zip(map(record_key, records["source"], records["source_id"]),
                      parts.record_part.tolist(), strict=True))
    # the ASP's signature joins A and B; the matcher joins c and x; y stands alone
    assert by_key[record_key("asp", "1")] == by_key[record_key("emplois", "a")] == \
        by_key[record_key("emplois", "b")]
    assert by_key[C] == by_key[X] != by_key[Y]
    assert len(set(parts.digests)) == len(parts.digests) == 3


# SIRET values the column-by-column rules must read as identity_key and signature_link do
ODD_SIRETS = [None, "", SIRET_A, SIRET_B, "34255976299912",  # the last an ASP placeholder
              "342559762999123", "3425597629991", "34255976299912\n",
              "\u0663\u0664\u0662\u0665\u0665\u0669\u0667\u0666\u0662999\u0661\u0662",
              "ABCDEFGHI99912", "34255976200048"]


def test_record_links_and_keys_read_sirets_as_the_merge_rules_do():
    rng = random.Random(7)
    rows = [rec(rng.choice(list(PRIORITY)), f"r{i}", rng.choice(ODD_SIRETS),
                siret_signature=rng.choice(ODD_SIRETS)) for i in range(400)]
    records = pd.DataFrame(rows, dtype=object)
    expected_keys, expected = [], []
    for r in rows:
        rk = record_key(r["source"], r["source_id"])
        expected_keys.append(rk)
        key, _ = identity_key(r["siret"], r["source"], r["source_id"])
        if key != rk:
            expected.append((rk, key))
        if signature_link(r["siret"], r["siret_signature"]):
            expected.append((f"siret:{r['siret_signature']}", f"siret:{r['siret']}"))
    keys, lefts, rights = _record_links(records)
    assert keys.to_pylist() == expected_keys
    assert list(zip(lefts.to_pylist(), rights.to_pylist(), strict=True)) == expected
    assert any(k.startswith("siret:") for k in rights.to_pylist())  # the set reached both rules
    # the successions read the same keys
    assert identity_keys(records) == (expected_keys, [
        identity_key(r["siret"], r["source"], r["source_id"])[0] for r in rows])


def _siret(n: int) -> str:
    body = f"{30000000 + n:08d}0001"
    return body + luhn.calc_check_digit(body)


def _random_set(rng: random.Random, n: int):
    records, edges = [], []
    for i in range(n):
        source = rng.choice(list(PRIORITY))
        siret = _siret(rng.randrange(n)) if rng.random() < 0.6 else None
        signature = _siret(rng.randrange(n // 2)) if source == "asp" and rng.random() < 0.2 \
            else None
        records.append(rec(source, str(i), siret, siret_signature=signature,
                           types=[rng.choice(["ACI", "AI", "EI"])],
                           telephone=f"+3346571{rng.randrange(10_000):04d}",
                           date_maj=dt.date(2024, 1, 1 + rng.randrange(28))))
    keys = [record_key(r["source"], r["source_id"]) for r in records]
    for _ in range(n // 5):
        a, b = rng.sample(keys, 2)
        edges.append(Edge(min(a, b), max(a, b), round(rng.uniform(0.85, 1.0), 3)))
    return records, edges


def _perturb(rng: random.Random, records, edges, judgements):
    records = [dict(r) for r in records]
    keys = [record_key(r["source"], r["source_id"]) for r in records]
    for _ in range(3):
        what = rng.randrange(5)
        if what == 0:  # an edit
            rng.choice(records)["telephone"] = f"+3346572{rng.randrange(10_000):04d}"
        elif what == 1:  # a new SIRET
            rng.choice(records)["siret"] = _siret(rng.randrange(len(records)))
        elif what == 2:  # a record gone
            records.pop(rng.randrange(len(records)))
        elif what == 3:  # a new edge
            a, b = rng.sample(keys, 2)
            edges = [*edges, Edge(min(a, b), max(a, b), 0.9)]
        else:  # an analyst's judgement
            a, b = rng.sample(keys, 2)
            judgements = {**judgements,
                          frozenset((a, b)): rng.choice(["same", "different"])}
    return records, edges, judgements


@pytest.mark.parametrize("seed", range(6))
def test_random_edits_equal_a_clustering_from_nothing(seed):
    rng = random.Random(seed)
    records, edges = _random_set(rng, 80)
    judgements: dict = {}
    result, memo = run(frame(records), ClusterMemo(), edges=edges)
    first_seen = {sid: dt.datetime(2024, 1, 1 + i % 28)
                  for i, sid in enumerate(sorted(set(result.ids.values())))}
    for _ in range(4):
        records, edges, judgements = _perturb(rng, records, edges, judgements)
        result, memo = run(frame(records), memo, result.ids, edges, judgements, first_seen)


class _InProcess:
    """A spread into `count` groups whose jobs run here, counting them."""

    def __init__(self, count: int):
        self.count, self.jobs = count, []

    def spread(self) -> Spread:
        return Spread(groups=lambda n: self.count, run=self._run)

    def _run(self, jobs):
        self.jobs.append(len(jobs))
        return [job() for job in jobs]


@pytest.mark.parametrize("batch", [None, 1, 7], ids=["one batch", "batch 1", "batch 7"])
@pytest.mark.parametrize("seed", range(4))
def test_components_clustered_in_groups_equal_one_clustering(seed, batch, monkeypatch):
    if batch:  # each group clusters its components this many records at a time
        monkeypatch.setattr(transforms.merge, "CLUSTER_BATCH_RECORDS", batch)
    rng = random.Random(100 + seed)
    records, edges = _random_set(rng, 120)
    judgements = {}
    keys = [record_key(r["source"], r["source_id"]) for r in records]
    for decision in ("different", "same", "different"):
        a, b = rng.sample(keys, 2)
        judgements[frozenset((a, b))] = decision
    judgements[frozenset(("record:gone:1", keys[0]))] = "different"  # a key without record
    records = frame(records)
    whole = merge_records(records, PRIORITY, {}, edges, judgements)
    grouped = _InProcess(3)
    memo = ClusterMemo()
    spread = merge_records(records, PRIORITY, {}, edges, judgements, memo=memo,
                           row_digests=digests(records), spread=grouped.spread())
    assert_same(spread, whole)
    assert grouped.jobs == [3]
    # the memo it leaves serves the next run as one made in one group would
    again = ClusterMemo(known=memo.kept)
    assert_same(merge_records(records, PRIORITY, {}, edges, judgements, memo=again,
                              row_digests=digests(records)), whole)
    assert again.clustered == 0


@pytest.mark.parametrize(("sizes", "chosen", "n", "expected"), [
    ([2, 2, 2, 2], [1, 1, 1, 1], 2, [0, 0, 1, 1]),
    ([2, 2, 2, 2], [1, 0, 1, 1], 2, [0, -1, 0, 1]),  # only the chosen count
    ([5, 1, 1, 1], [1, 1, 1, 1], 2, [0, 1, 1, 1]),  # a large component: its own group
    ([1, 1, 1], [1, 1, 1], 1, [0, 0, 0]),
    ([1, 1], [1, 1], 4, [0, 2]),  # more groups than components: some stay empty
], ids=["even", "not chosen", "uneven", "one group", "too many groups"])
def test_components_are_cut_into_groups_of_about_equal_records(sizes, chosen, n, expected):
    record_part = np.repeat(np.arange(len(sizes)), sizes)
    groups = component_groups(record_part, np.asarray(chosen, dtype=bool), n)
    assert groups.tolist() == expected


def test_a_group_makes_rows_a_batch_at_a_time(monkeypatch):
    """A clustering job holds the rows of one batch of whole components at once."""
    monkeypatch.setattr(transforms.merge, "CLUSTER_BATCH_RECORDS", 10)
    rng = random.Random(5)
    records, edges = _random_set(rng, 120)
    records = frame(records)
    made: list[int] = []

    def rows(mask):
        made.append(int(mask.sum()))
        return transforms.merge.rows_of(records[mask])

    spread = Spread(groups=lambda n: 2, run=lambda jobs: [job() for job in jobs], rows=rows)
    result = merge_records(records, PRIORITY, {}, edges, {}, memo=ClusterMemo(),
                           row_digests=digests(records), spread=spread)
    assert_same(result, merge_records(records, PRIORITY, {}, edges, {}))
    largest = int(np.bincount(components(records, digests(records), edges, {}).record_part)
                  .max())
    assert sum(made) == len(records) and len(made) > 2
    assert max(made) < 10 + largest  # a batch overruns by less than one component


@pytest.mark.parametrize(("records", "others", "size", "expected", "expected_others"), [
    ([0, 0, 1, 1, 2, 2], [[0, 2]], 4, [0, 0, 0, 0, 1, 1], [[0, 1]]),
    ([0, 0, 0, 0, 0, 1], [[]], 2, [0, 0, 0, 0, 0, 2], [[]]),  # a large component stays whole
    ([0, 2], [[1]], 1, [0, 1], [[1]]),  # a judged key alone (component 1) joins the next
    ([3, 3, 5], [[3]], 50_000, [0, 0, 0], [[0]]),
], ids=["even", "large component", "no records", "one batch"])
def test_components_are_cut_into_batches_of_about_size_records(records, others, size,
                                                               expected, expected_others):
    found, found_others = component_batches(np.asarray(records),
                                            [np.asarray(o, dtype=np.int64) for o in others],
                                            size)
    assert found.tolist() == expected
    assert [o.tolist() for o in found_others] == expected_others
