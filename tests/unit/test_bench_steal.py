"""The benchmark's sign of a slower hour: the CPU time the hypervisor gave other guests."""

from scripts.bench_pipeline import cpu_times, steal_share

STAT_BEFORE = """cpu  1000 10 500 8000 40 0 50 400 0 0
cpu0 500 5 250 4000 20 0 25 200 0 0
intr 123
"""
STAT_AFTER = """cpu  1600 10 700 8400 40 0 50 1200 0 0
cpu0 800 5 350 4200 20 0 25 600 0 0
"""


def test_steal_is_the_share_of_all_cpu_ticks_between_two_readings():
    before, after = cpu_times(STAT_BEFORE), cpu_times(STAT_AFTER)
    assert before == (400, 10000) and after == (1200, 12000)
    assert steal_share(before, after) == 0.4  # 800 of 2,000 ticks


def test_an_older_kernel_without_steal_counts_none():
    assert cpu_times("cpu  1000 10 500 8000 40 0 50\n") == (0, 9600)


def test_no_reading_or_no_time_elapsed_gives_no_share():
    assert cpu_times("intr 1\n") is None
    assert steal_share(None, (1, 2)) is None
    assert steal_share((5, 100), (5, 100)) is None


def test_this_machine_can_be_read():
    reading = cpu_times()
    assert reading is None or 0 <= reading[0] <= reading[1]
