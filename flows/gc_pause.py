"""Python's cyclic garbage collector paused during the steps that build millions of objects.

Staging, clustering, geocoding, locating, publishing and rendering the site create rows,
dicts and strings by the million, none of them in reference cycles; the collector would scan
them again and again as they pile up (a fifth of the clustering's time at 111k records,
measured). Memory is still freed by reference counting; cycles made meanwhile are collected
once it resumes. The memory a paused step freed is given back to the system when the last
pause ends (flows.heap).
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from flows.heap import give_back

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_paused = 0  # steps running with the collector paused (tasks may run in threads)
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """The collector off until the last step that paused it ends."""
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            last = _paused == 0
            if last and _was_enabled:
                gc.enable()
        if last:  # the step's locals are gone: what it freed goes back to the system
            give_back()


def gc_paused_during(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` run with the collector paused (a decorator)."""
    @functools.wraps(fn)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        with gc_paused():
            return fn(*args, **kwargs)
    return paused
