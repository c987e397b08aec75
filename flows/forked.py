"""Pure-Python work spread over this machine's cores by forked processes.

Rendering pages and encoding files are pure Python: threads would share one core. A forked
process inherits the parent's memory, so the large inputs (every published row) are read
where they are, not pickled through a pipe; only each job's result travels back, through a
file in memory (/dev/shm) where there is one: a national release's files are a gigabyte.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from flows.run_report import task_logger

T = TypeVar("T")

# The jobs the forked processes run: set just before they start, so that they inherit it.
_JOBS: Sequence[Callable[[], object]] | None = None
# Where they leave their results (a folder in memory), or None: through the pool's pipe.
_SPOOL: str | None = None
# Memory-backed on Linux: a result written there and read back costs a fifth of the pipe's
# time (the files of a national release are a gigabyte; the pipe moves 250 MB/s).
SHARED_MEMORY = Path("/dev/shm")


@dataclass(frozen=True)
class _Spooled:
    path: str


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def default_workers() -> int:
    """The processes a step forks unless told: one per core, at most 4 (beyond that the
    copies of the parent's memory cost more than the cores give)."""
    return min(4, cores())


def available_memory() -> int | None:
    """Bytes of memory the kernel could give without swapping (MemAvailable), or None
    where it does not say."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def affordable_workers(workers: int, per_worker: int, what: str) -> int:
    """`workers`, or as many forked processes as the memory the kernel says is available
    holds at `per_worker` bytes each (their own memory: the parent's pages they touch and
    what they make); 1, the work done in this process (slower, not larger), when fewer than
    two fit. A warning says when it cuts, naming `what`."""
    if workers <= 1 or per_worker <= 0:
        return workers
    free = available_memory()
    if free is None or free >= workers * per_worker:
        return workers
    fit = int(free // per_worker)
    chosen = fit if fit >= 2 else 1
    task_logger().warning(
        "%s: %s instead of %d forked processes: %d MB available, about %d MB needed by each",
        what, f"{chosen} processes" if chosen > 1 else "this process", workers, free >> 20,
        per_worker >> 20)
    return chosen


def can_fork() -> bool:
    """Whether this platform forks (Linux does; Windows and macOS' default do not)."""
    return "fork" in multiprocessing.get_all_start_methods()


# A result is spooled in pickles of at most this many list items: one pickle keeps a
# table of every object it wrote until it ends (a clustering group's 185,000 places at 1M:
# 400 MB more in the process that writes it).
CHUNK = 20_000


def _dump_part(value: object, fh) -> None:
    if type(value) is list and len(value) > CHUNK:
        pieces = [value[i:i + CHUNK] for i in range(0, len(value), CHUNK)]
        pickle.dump(("list", len(pieces)), fh, protocol=pickle.HIGHEST_PROTOCOL)
        for piece in pieces:
            pickle.dump(piece, fh, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(("one", 1), fh, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _load_part(fh) -> object:
    kind, count = pickle.load(fh)
    if kind == "one":
        return pickle.load(fh)
    return [item for _ in range(count) for item in pickle.load(fh)]


def dump_chunked(result: object, fh) -> None:
    """Pickle `result` so that no single pickle spans a long list: a tuple item by item,
    and a long list (alone or in the tuple) in pieces of CHUNK items. Objects shared
    between pieces come back as copies."""
    parts = list(result) if type(result) is tuple else [result]
    pickle.dump(("tuple" if type(result) is tuple else "value", len(parts)), fh,
                protocol=pickle.HIGHEST_PROTOCOL)
    for part in parts:
        _dump_part(part, fh)


def load_chunked(fh) -> object:
    """What dump_chunked wrote."""
    kind, count = pickle.load(fh)
    parts = [_load_part(fh) for _ in range(count)]
    return tuple(parts) if kind == "tuple" else parts[0]


def _run(index: int) -> object:
    assert _JOBS is not None
    result = _JOBS[index]()
    if _SPOOL is None:
        return result
    path = os.path.join(_SPOOL, f"{index}.pickle")
    try:
        with open(path, "wb") as f:
            dump_chunked(result, f)
    except OSError:  # a small /dev/shm (a container's 64 MB): through the pipe then
        with contextlib.suppress(OSError):
            os.unlink(path)
        return result
    return _Spooled(path)


def _received(result: object) -> object:
    if not isinstance(result, _Spooled):
        return result
    try:
        with open(result.path, "rb") as f:
            return load_chunked(f)
    finally:
        os.unlink(result.path)


def _spool_folder() -> str | None:
    if not SHARED_MEMORY.is_dir() or not os.access(SHARED_MEMORY, os.W_OK):
        return None
    try:
        return tempfile.mkdtemp(prefix="siae-forked-", dir=SHARED_MEMORY)
    except OSError:
        return None


def run_forked(jobs: Sequence[Callable[[], T]], workers: int,
               forked: Callable[[], None] | None = None) -> list[T]:
    """Each job's result, in order, run by up to `workers` forked processes (in this one
    when `workers` is 1, or where the platform cannot fork). A job's exception is raised
    here. Jobs must not write to the warehouse: DuckDB allows one writing process.
    `forked` is called here once the processes are forked (not when the jobs run here):
    what only the jobs read may then be dropped, the processes have their copy."""
    return list(forked_each(jobs, workers, forked))


def forked_each(jobs: Sequence[Callable[[], T]], workers: int,
                forked: Callable[[], None] | None = None) -> Iterator[T]:
    """`run_forked`, each result given as soon as it and those before it are done: the
    caller uses one (writes it to the warehouse) while the processes work on the next."""
    global _JOBS, _SPOOL
    if workers <= 1 or len(jobs) <= 1 or not can_fork():
        yield from (job() for job in jobs)
        return
    _JOBS, _SPOOL = jobs, _spool_folder()
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            # every process is forked at the first job's submission, before the caller
            # writes anything (a pool that forks spawns all its processes at once)
            results = pool.map(_run, range(len(jobs)))
            if forked is not None:
                forked()
            for result in results:
                yield _received(result)
    finally:
        if _SPOOL is not None:  # what a failed job's process left
            shutil.rmtree(_SPOOL, ignore_errors=True)
        _JOBS, _SPOOL = None, None
