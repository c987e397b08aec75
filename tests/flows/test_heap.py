"""Memory a step freed goes back to the system (glibc's malloc_trim), not only to malloc."""

import pytest

from flows import heap


def _rss_mib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) // 1024


def test_freed_blocks_between_survivors_leave_the_process():
    if not heap.give_back():
        pytest.skip("this C library has no malloc_trim")
    # 200 MB of blocks too large for Python's own allocator (above 512 bytes), one in a
    # hundred kept: glibc cannot hand the rest back by itself, they sit below the survivors
    blocks = [bytearray(2000) for _ in range(100_000)]
    survivors = blocks[::100]
    del blocks
    before = _rss_mib()
    assert heap.give_back()
    after = _rss_mib()
    assert before - after >= 100, (before, after)
    assert len(survivors) == 1000


def test_without_malloc_trim_nothing_is_attempted(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert heap.give_back() is False
