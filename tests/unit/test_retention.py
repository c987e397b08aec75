"""Raw retention: the latest payloads and the one behind the current staging stay."""

import datetime as dt

from transforms.retention import raw_to_prune

T = dt.datetime(2026, 11, 1)


def fetch(sha, day, run=None):
    return sha, f"raw/src/{sha}.csv", T + dt.timedelta(days=day), run or f"run{day}"


def test_keep_zero_keeps_everything():
    assert raw_to_prune([fetch("a", 0), fetch("b", 1)], 0, set()) == []


def test_only_the_files_of_the_latest_fetches_stay():
    rows = [fetch("a", 0), fetch("b", 1), fetch("c", 2), fetch("d", 3)]
    assert raw_to_prune(rows, 2, set()) == ["raw/src/a.csv", "raw/src/b.csv"]


def test_a_payload_fetched_again_counts_at_its_latest_fetch():
    rows = [fetch("a", 0), fetch("b", 1), fetch("a", 2)]
    assert raw_to_prune(rows, 1, set()) == ["raw/src/b.csv"]


def test_the_two_files_of_one_fetch_go_together():
    rows = [fetch("s1", 0), fetch("a1", 0), fetch("s2", 1), fetch("a2", 1)]
    assert raw_to_prune(rows, 1, set()) == ["raw/src/a1.csv", "raw/src/s1.csv"]


def test_the_payload_behind_the_current_staging_is_never_pruned():
    # the source has failed since run0: its last good staging came from payload "a"
    rows = [fetch("a", 0), fetch("b", 1), fetch("c", 2)]
    assert raw_to_prune(rows, 1, {"run0"}) == ["raw/src/b.csv"]
