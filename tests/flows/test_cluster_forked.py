"""The clustering's groups of components in forked processes: the places, links, IDs and
held pairs of one clustering in this process, and no fork below the threshold."""

import random
from pathlib import Path

import pyarrow as pa
import pytest

from flows import consolidation
from flows import forked as fork
from tests.unit.test_cluster_memo import PRIORITY, _random_set, assert_same, digests, frame
from transforms.frames import arrow_rows, rows_of
from transforms.merge import ClusterMemo, merge_records

pytestmark = pytest.mark.skipif(not fork.can_fork(), reason="this platform does not fork")


@pytest.fixture
def forks(monkeypatch):
    """The job counts of every run_forked call the clustering makes, on 2 workers."""
    calls = []

    def counting(jobs, workers, forked=None):
        calls.append((len(jobs), workers))
        return fork.run_forked(jobs, workers, forked)

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
    assert_same(_merged(records, edges, consolidation.cluster_spread(None, fork_from=100)), one)
    assert forks == [(2, 2)]


def test_forked_groups_read_their_rows_from_arrow(forks):
    records, edges = _random_set(random.Random(9), 300)
    records = frame(records)
    table = pa.Table.from_pandas(records, preserve_index=False)
    assert arrow_rows(table) == rows_of(records)  # the rows the clustering reads
    one = merge_records(records, PRIORITY, {}, edges, {})
    spread = consolidation.cluster_spread(table, fork_from=100)
    assert_same(_merged(records, edges, spread), one)
    assert forks == [(2, 2)]


def test_the_flow_drops_the_records_once_the_groups_are_forked(monkeypatch):
    # The forked processes have the records: the flow holds the places they send back
    # without them (at 1M, 300 MB less at the merge's peak).
    held_then = []

    def watching(jobs, workers, forked=None):
        def dropped():
            forked()
            held_then.append(pa.total_allocated_bytes())
        return fork.run_forked(jobs, workers, dropped)

    monkeypatch.setattr(consolidation, "default_workers", lambda: 2)
    monkeypatch.setattr(consolidation, "run_forked", watching)
    records, edges = _random_set(random.Random(9), 2000)
    records = frame(records)
    before = pa.total_allocated_bytes()
    table = pa.Table.from_pandas(records, preserve_index=False)
    size = pa.total_allocated_bytes() - before
    spread = consolidation.cluster_spread(table, fork_from=100)
    del table
    assert_same(_merged(records, edges, spread), merge_records(records, PRIORITY, {}, edges, {}))
    assert size > 100_000 and held_then and held_then[0] - before < size // 10


def test_below_the_threshold_nothing_forks(forks):
    records, edges = _random_set(random.Random(8), 50)
    records = frame(records)
    one = merge_records(records, PRIORITY, {}, edges, {})
    assert_same(_merged(records, edges, consolidation.cluster_spread(None, fork_from=100)), one)
    assert forks == []


def test_without_the_memory_to_fork_one_process_clusters(forks, monkeypatch, caplog):
    records, edges = _random_set(random.Random(10), 300)
    records = frame(records)
    monkeypatch.setattr(consolidation, "available_memory", lambda: 300 * 1000)
    one = merge_records(records, PRIORITY, {}, edges, {})
    with caplog.at_level("WARNING"):
        assert_same(_merged(records, edges, consolidation.cluster_spread(None, fork_from=100)),
                    one)
    assert forks == []
    assert "in one process" in caplog.text


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="no /proc/meminfo here")
def test_the_memory_the_kernel_says_is_available():
    total = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < fork.available_memory() <= total
