"""The memory one benchmark run takes: this process's peak RSS during the run, and the
private memory of the processes it forked, sampled while the run goes on.

A forked process's RSS counts every page it still shares with its parent, so the sum of
RSS overstates the machine's memory and `RUSAGE_CHILDREN` (the largest child's RSS, over the
process's whole life) says little. A process's private pages (`Private_Clean` and
`Private_Dirty` of /proc/PID/smaps_rollup) are what it adds. This process's own peak is reset
at the start of each run (/proc/self/clear_refs), so that a run is not charged with the peak of
the run before it. Linux only; elsewhere the figures are None.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Processes this one starts that are not the pipeline's forked work (Prefect's temporary
# server).
_NOT_FORKED = ("uvicorn", "prefect.server", "local_ban.py")  # not the flow's work


def _kib(path: Path, *fields: str) -> int | None:
    """The sum of these fields (kB) of a /proc status-like file, or None when unreadable."""
    try:
        text = path.read_text()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            total += int(rest.split()[0])
    return total


def children(pid: int | str = "self") -> list[int]:
    """The processes started by any thread of `pid`."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def forked_private_kib(pid: int | str = "self") -> int:
    """The private memory of `pid`'s children, Prefect's server left out."""
    total = 0
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(name in command for name in _NOT_FORKED):
            continue
        total += _kib(Path(f"/proc/{child}/smaps_rollup"),
                      "Private_Clean", "Private_Dirty") or 0
    return total


@dataclass
class RunMemory:
    start_mib: int | None = None  # this process's RSS when the run began
    peak_mib: int | None = None  # its peak RSS during the run
    forked_mib: int | None = None  # the forked processes' private memory, at its largest
    together_mib: int | None = None  # this process's RSS and theirs, at the largest sample
    # every sample: (local time, this process's RSS KiB, the forked processes' private KiB)
    samples: list[tuple[dt.datetime, int, int]] = field(default_factory=list)

    def between(self, start: dt.datetime, end: dt.datetime) -> dict[str, int] | None:
        """This process's largest RSS, the forked processes' largest private memory and
        the largest sum of both (MiB) among the samples from `start` to `end` (a step's
        window in ops.runs, local times as it writes them); None when no sample fell in it
        (a step shorter than the sampling interval)."""
        inside = [(rss, forked) for at, rss, forked in self.samples if start <= at <= end]
        if not inside:
            return None
        return {"rss_mib": max(r for r, _ in inside) // 1024,
                "forked_mib": max(f for _, f in inside) // 1024,
                "together_mib": max(r + f for r, f in inside) // 1024}


class MemoryWatch:
    """`with MemoryWatch() as watch: ...`, then `watch.result` (sampled every `every` s)."""

    def __init__(self, every: float = 0.5):
        self.every = every
        self.result = RunMemory()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._forked = 0
        self._together = 0

    def __enter__(self) -> MemoryWatch:
        status = Path("/proc/self/status")
        if not status.exists():
            return self
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
        self.result.start_mib = (_kib(status, "VmRSS") or 0) // 1024
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        status = Path("/proc/self/status")
        while not self._stop.wait(self.every):
            rss = _kib(status, "VmRSS") or 0
            forked = forked_private_kib()
            self.result.samples.append((dt.datetime.now(), rss, forked))
            self._forked = max(self._forked, forked)
            self._together = max(self._together, rss + forked)

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        peak = _kib(Path("/proc/self/status"), "VmHWM") or 0
        self.result.peak_mib = peak // 1024
        self.result.forked_mib = self._forked // 1024
        # the sampler can miss this process's own peak: never less than it
        self.result.together_mib = max(self._together, peak) // 1024
