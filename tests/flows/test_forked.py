"""Jobs run by forked processes: results in order, through a file in memory or the pipe,
nothing left behind, a job's error raised in the caller."""

import functools
import os

import pytest

from flows import forked

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="this platform does not fork")


def _payload(n: int) -> dict:
    return {"n": n, "data": bytes([n % 256]) * (1 << 20), "pid": os.getpid()}


def _fails() -> None:
    raise ValueError("job 2 refused its input")


def _spools(folder) -> list:
    return sorted(p.name for p in folder.glob("siae-forked-*"))


@pytest.mark.parametrize("memory", [True, False], ids=["in-memory-file", "pipe"])
def test_results_come_back_in_order_from_other_processes(memory, tmp_path, monkeypatch):
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(forked, "SHARED_MEMORY", shm if memory else tmp_path / "none")
    spooled = []
    real = forked._received
    monkeypatch.setattr(forked, "_received",
                        lambda r: spooled.append(isinstance(r, forked._Spooled)) or real(r))
    results = forked.run_forked([functools.partial(_payload, n) for n in range(5)], 2)
    assert [r["n"] for r in results] == list(range(5))
    assert all(r["data"] == bytes([r["n"]]) * (1 << 20) for r in results)
    assert os.getpid() not in {r["pid"] for r in results}
    assert spooled == [memory] * 5
    assert _spools(shm) == []  # every file read back is gone, and its folder


def test_a_failing_job_raises_here_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(forked, "SHARED_MEMORY", tmp_path)
    jobs = [functools.partial(_payload, 1), _fails, functools.partial(_payload, 3)]
    with pytest.raises(ValueError, match="job 2 refused"):
        forked.run_forked(jobs, 2)
    assert _spools(tmp_path) == []


@pytest.mark.parametrize("result", [
    list(range(45)),
    (["a"] * 23, {"held": 1}),
    ([], {}),
    ("text", [1, 2]),
    {"one": "dict"},
    [[1], [2]] * 11,
], ids=["long list", "tuple with a long list", "empty parts", "short tuple", "dict",
        "nested lists"])
def test_a_result_spooled_in_pieces_reads_back_equal(result, tmp_path, monkeypatch):
    monkeypatch.setattr(forked, "CHUNK", 10)
    path = tmp_path / "result.pickle"
    with path.open("wb") as fh:
        forked.dump_chunked(result, fh)
    with path.open("rb") as fh:
        again = forked.load_chunked(fh)
        assert fh.read() == b""  # every piece read
    assert again == result and type(again) is type(result)
