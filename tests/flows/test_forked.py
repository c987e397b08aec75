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


def _waits_for(mark, seconds: float = 60.0) -> str:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if mark.exists():
            return "saw the mark"
        time.sleep(0.05)
    return "timed out"


def test_each_result_is_given_before_the_later_jobs_end(tmp_path):
    # the second job ends only once the caller has used the first result
    mark = tmp_path / "first result used"
    results = forked.forked_each([functools.partial(_payload, 0),
                                  functools.partial(_waits_for, mark)], 2)
    assert next(results)["n"] == 0
    mark.touch()
    assert list(results) == ["saw the mark"]


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


GB = 1 << 30


@pytest.mark.parametrize(("free", "workers", "expected"), [
    (None, 4, 4),            # the kernel does not say: as asked
    (10 * GB, 4, 4),         # room for all
    (3.5 * GB, 4, 3),        # room for three
    (1.5 * GB, 2, 1),        # not two: this process does the work
    (0.2 * GB, 1, 1),        # one asked, one given, nothing said
], ids=["unknown", "enough", "fewer", "none", "one-asked"])
def test_forked_processes_are_as_many_as_the_memory_holds(free, workers, expected,
                                                          monkeypatch, caplog):
    monkeypatch.setattr(forked, "available_memory", lambda: None if free is None else int(free))
    with caplog.at_level("WARNING"):
        assert forked.affordable_workers(workers, GB, "encoding the release") == expected
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if expected < workers:
        assert warned and "encoding the release" in warned[0] and "MB available" in warned[0]
    else:
        assert not warned


class _Asked(Exception):
    pass


def test_publish_encodes_in_this_process_without_the_memory_to_fork(monkeypatch, tmp_path):
    from flows import publish

    asked = []

    def spy(jobs, workers):  # what write_files asks for, without encoding anything
        asked.append(workers)
        raise _Asked

    monkeypatch.setattr(publish, "run_forked", spy)
    rows = [{"structure_id": f"siae-{i:05d}"} for i in range(publish.PARALLEL_FROM)]
    for free, given in ((10 * GB, rows[:10]), (10 * GB, rows), (1 << 20, rows)):
        monkeypatch.setattr(forked, "available_memory", lambda free=free: free)
        with pytest.raises(_Asked):
            publish.write_files(tmp_path, given, workers=2)
    assert asked == [1, 2, 1]  # a small release in one process anyway


def test_the_site_makes_its_pages_in_this_process_without_the_memory_to_fork(monkeypatch):
    from flows import site

    monkeypatch.setattr(forked, "available_memory", lambda: 10 * GB)
    assert site._workers(2, 100_000, 100_000) == 2
    monkeypatch.setattr(forked, "available_memory", lambda: 1 << 20)
    assert site._workers(2, 100_000, 100_000) == 1
