"""The benchmark's memory figures: a run's own peak, and what its forked processes add."""

import datetime as dt
import multiprocessing
import sys
import time
from pathlib import Path

import pytest

from scripts.memory_watch import MemoryWatch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
MIB = 1 << 20


def _hold(mib: int, seconds: float) -> None:
    block = bytearray(mib * MIB)  # written: private pages of the child's own
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(seconds)


def test_a_forked_process_private_memory_is_counted():
    context = multiprocessing.get_context("fork")
    with MemoryWatch(every=0.05) as watch:
        child = context.Process(target=_hold, args=(120, 1.0))
        child.start()
        child.join()
    assert watch.result.forked_mib >= 100
    # with the flow's own RSS (which may shrink a little meanwhile)
    assert watch.result.together_mib >= watch.result.forked_mib + watch.result.start_mib // 2


def test_each_run_has_its_own_peak():
    block = bytearray(300 * MIB)
    block[::4096] = b"x" * len(block[::4096])
    del block
    with MemoryWatch(every=0.05) as watch:
        time.sleep(0.2)
    # the 300 MiB held before the run are not its peak
    assert watch.result.peak_mib < watch.result.start_mib + 100
    assert Path("/proc/self/status").exists()


def test_a_window_reads_the_samples_inside_it():
    block = None
    with MemoryWatch(every=0.05) as watch:
        time.sleep(0.3)
        before = dt.datetime.now()
        time.sleep(0.1)
        block = bytearray(200 * MIB)
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(0.3)
        after = dt.datetime.now()
    del block
    start = watch.result.samples[0][0]
    quiet = watch.result.between(start, before)
    busy = watch.result.between(before, after)
    assert busy["rss_mib"] >= quiet["rss_mib"] + 150
    assert busy["together_mib"] >= busy["rss_mib"]
    assert watch.result.between(after + dt.timedelta(hours=1),
                                after + dt.timedelta(hours=2)) is None
