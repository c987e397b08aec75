"""The clustering's groups of components in forked processes: the places, links, IDs and
held pairs of one clustering in this process, and no fork below the threshold."""

import random

import pytest

from flows import consolidation, forked
from tests.unit.test_cluster_memo import PRIORITY, _random_set, assert_same, digests, frame
from transforms.merge import ClusterMemo, merge_records

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="this platform does not fork")


@pytest.fixture
def forks(monkeypatch):
    """The job counts of every run_forked call the clustering makes, on 2 workers."""
    calls = []

    def counting(jobs, workers):
        calls.append((len(jobs), workers))
        return forked.run_forked(jobs, workers)

    monkeypatch.setattr(consolidation, "default_workers", lambda: 2)
    monkeypatch.setattr(consolidation, "run_forked", counting)
    return calls


def _merged(records, edges, spread):
    return merge_records(records, PRIORITY, {}, edges, {}, memo=ClusterMemo(),
                         row_digests=digests(records), spread=spread)


def test_forked_groups_give_the_clustering_of_one_process(forks):
    records, edges = _random_set(random.Random(7), 300)
    records = frame(records)
    one = merge_records(records, PRIORITY, {}, edges, {})
    assert_same(_merged(records, edges, consolidation.cluster_spread(fork_from=100)), one)
    assert forks == [(2, 2)]


def test_below_the_threshold_nothing_forks(forks):
    records, edges = _random_set(random.Random(8), 50)
    records = frame(records)
    one = merge_records(records, PRIORITY, {}, edges, {})
    assert_same(_merged(records, edges, consolidation.cluster_spread(fork_from=100)), one)
    assert forks == []
