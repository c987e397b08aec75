"""Pure-Python work spread over this machine's cores by forked processes.

Rendering pages and encoding files are pure Python: threads would share one core. A forked
process inherits the parent's memory, so the large inputs (every published row) are read
where they are, not pickled through a pipe; only each job's result travels back.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# The jobs the forked processes run: set just before they start, so that they inherit it.
_JOBS: Sequence[Callable[[], object]] | None = None


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def default_workers() -> int:
    """The processes a step forks unless told: one per core, at most 4 (beyond that the
    copies of the parent's memory cost more than the cores give)."""
    return min(4, cores())


def can_fork() -> bool:
    """Whether this platform forks (Linux does; Windows and macOS' default do not)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _run(index: int) -> object:
    assert _JOBS is not None
    return _JOBS[index]()


def run_forked(jobs: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Each job's result, in order, run by up to `workers` forked processes (in this one
    when `workers` is 1, or where the platform cannot fork). A job's exception is raised
    here. Jobs must not write to the warehouse: DuckDB allows one writing process."""
    global _JOBS
    if workers <= 1 or len(jobs) <= 1 or not can_fork():
        return [job() for job in jobs]
    _JOBS = jobs
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            return list(pool.map(_run, range(len(jobs))))
    finally:
        _JOBS = None
