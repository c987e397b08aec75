"""One consolidation at a time per warehouse: an advisory file lock with a clear message.

A source's staging is written under the same lock (briefly): a consolidation reads the
stagings when it merges and copies them into core.records minutes later at national scale,
and a source staged in between would make it fail (warehouse.staging.StagingChanged)."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WarehouseBusy(RuntimeError):
    """Another consolidation holds the warehouse; the message says who and since when."""


@contextmanager
def consolidation_lock(home: Path, wait_seconds: float = 600.0,
                       poll: float = 0.5, purpose: str = "") -> Iterator[None]:
    """Hold `<home>/.consolidate.lock` for the duration; wait for it at most `wait_seconds`.
    Not re-entrant: a second holder, in this process or another, waits. `purpose` is
    written beside the holder's pid, for the message of whoever waits."""
    path = home / ".consolidate.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "unknown"
                    raise WarehouseBusy(
                        f"another consolidation is running on {home} ({holder}); waited "
                        f"{wait_seconds:.0f} s, giving up: nothing was changed") from None
                time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {dt.datetime.now():%Y-%m-%d %H:%M:%S}"
                 + (f", {purpose}" if purpose else ""))
        fh.flush()
        yield
    finally:
        fh.close()  # closing releases the lock
