"""One flow run's steps: their results, the run report (ops.runs, a Prefect artifact, the
terminal) and the alerts sent at its end."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import MissingContextError
from prefect.utilities.annotations import quote

from flows.alerts import notify
from flows.status import PIPELINE_PROBLEMS, pipeline_problems, problems, source_statuses
from transforms.spec import Spec
from warehouse import ops
from warehouse.db import connect
from warehouse.paths import WarehousePaths

log = logging.getLogger("siae.run")


@dataclass
class StepResult:
    step: str
    source: str | None
    status: str
    seconds: float
    rows_in: int | None = None
    rows_out: int | None = None
    rejected: int | None = None
    bytes: int | None = None
    message: str | None = None
    details: dict = field(default_factory=dict)


@dataclass
class RunSummary:
    run_id: str
    steps: list[StepResult]
    structures: int = 0
    features: int = 0
    without_coordinates: int = 0
    closed: int = 0
    unconfirmed: int = 0  # open places whose kinds no source confirms
    geocoding_requests: int = 0
    alerted: bool = False
    published_by_precision: dict = field(default_factory=dict)
    published: bool = False
    geojson: str | None = None
    current_release: dict | None = None  # what stays published when this run published none

    @property
    def failed_sources(self) -> list[str]:
        return sorted({s.source for s in self.steps if s.source and s.status == "failed"})

    @property
    def failed_targets(self) -> list[str]:
        """Publication targets that did not get this run's release (or refused it)."""
        return sorted({(s.details or {}).get("target") or "?" for s in self.steps
                       if s.step == "upload" and s.status == "failed"})

    @property
    def failed_steps(self) -> list[str]:
        """Steps of the consolidation that failed without stopping the publication (geocode:
        cached answers were used; site, snapshot), uploads left to `failed_targets`."""
        return sorted({s.step for s in self.steps
                       if not s.source and s.status == "failed" and s.step != "upload"})

    @property
    def exit_code(self) -> int:
        """What `siae sync` exits with: 1 nothing published; 2 published, but a source kept its
        last good data, a publication target did not get the release, or another step failed
        (the geocoder, the site, the snapshot); 0 otherwise. A scheduler that reads the code
        sees a failed site as it sees a failed source."""
        if not self.published:
            return 1
        return 2 if self.failed_sources or self.failed_targets or self.failed_steps else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_task(fn, *args, **kwargs):
    """Call a task, returning (value or None, error message or None, seconds)."""
    t0 = time.perf_counter()
    # quote(): Prefect would otherwise walk every list, dict and dataclass passed (the
    # records, the pairs, the identities), seconds at national size; no future is passed.
    state = fn(*map(quote, args), return_state=True,
               **{k: quote(v) for k, v in kwargs.items()})
    seconds = round(time.perf_counter() - t0, 3)
    if state.is_completed():
        return state.result(), None, seconds
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by Prefect
        return None, str(exc) or type(exc).__name__, seconds
    return None, f"task ended {state.type.value}", seconds


def task_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task, the module's logger outside one."""
    try:
        return get_run_logger()
    except MissingContextError:
        return log


def call_direct(fn, *args, **kwargs):
    """Call a task's function without Prefect (the CLI's own commands), like run_task."""
    t0 = time.perf_counter()
    try:
        value = fn.fn(*args, **kwargs)
    except Exception as exc:
        log.debug("%s failed", fn.name, exc_info=True)
        return None, str(exc) or type(exc).__name__, round(time.perf_counter() - t0, 3)
    return value, None, round(time.perf_counter() - t0, 3)


class Run:
    """The steps of one run: logged as they end, written to ops.runs at the end, reported as
    a Prefect artifact, and alerted on when something is wrong. `direct` runs the tasks'
    functions without Prefect (commands such as `siae geocode`)."""

    def __init__(self, root: Path, spec: Spec, direct: bool = False):
        self.root, self.spec, self.direct = root, spec, direct
        self.run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
        self.summary = RunSummary(self.run_id, [])
        self.starts: list[dt.datetime] = []
        self.logger = log if direct else get_run_logger()
        with connect(WarehousePaths(root).ensure().database) as con:
            interrupted = ops.mark_interrupted(con, _alive)
            ops.start_run(con, self.run_id, dt.datetime.now(), os.getpid())
        for run_id in interrupted:
            self.logger.warning("run %s was interrupted (its process is gone)", run_id)

    def call(self, fn, *args, **kwargs):
        """(value or None, error message or None, seconds) of a task of this run."""
        return (call_direct if self.direct else run_task)(fn, *args, **kwargs)

    @contextlib.contextmanager
    def beside(self, fn, *args, **kwargs) -> Iterator[Callable[[], tuple]]:
        """Call a task of this run (`call`) in a thread while the caller works on what does
        not need it; give a function that waits for its (value, error, seconds). The block
        ends when the task has, whatever happened in it."""
        context = contextvars.copy_context()  # the flow run's: Prefect's task sees it
        with ThreadPoolExecutor(1, thread_name_prefix=f"{fn.name}-beside") as pool:
            future = pool.submit(context.run, self.call, fn, *args, **kwargs)
            yield future.result

    def step(self, result: StepResult, start: dt.datetime) -> StepResult:
        self.summary.steps.append(result)
        self.starts.append(start)
        # written as it ends: a run killed later keeps the record of what it did
        with connect(WarehousePaths(self.root).database) as con:
            ops.record_steps(con, [(
                self.run_id, result.step, result.source, start,
                start + dt.timedelta(seconds=result.seconds), result.seconds, result.status,
                result.rows_in, result.rows_out, result.rejected, result.bytes,
                result.message or (json.dumps(result.details, sort_keys=True, default=str)
                                   if result.details else None))])
        level = self.logger.warning if result.status == "failed" else self.logger.info
        counts = " ".join(f"{k}={v}" for k, v in (("in", result.rows_in),
                                                 ("out", result.rows_out),
                                                 ("rejected", result.rejected)) if v is not None)
        level("%s%s: %s %s(%.1fs)%s", result.step, f" {result.source}" if result.source else "",
              result.status, f"{counts} " if counts else "", result.seconds,
              f" — {result.message}" if result.message else "")
        return result

    def finish(self) -> RunSummary:
        failed = [s for s in self.summary.steps if s.status == "failed"]
        status = "ok" if not failed else "failed" if not self.summary.published else "partial"
        with connect(WarehousePaths(self.root).database) as con:
            ops.finish_run(con, self.run_id, dt.datetime.now(), status,
                           "; ".join(f"{s.step} {s.source or ''}: {s.message}".replace(" :", ":")
                                     for s in failed)[:2000] or None)
        if self.direct:
            return self.summary
        create_markdown_artifact(markdown=report_markdown(self.summary), key="siae-run-report",
                                 description=f"SIAE Atlas run {self.run_id}")
        now = dt.datetime.now()
        current = problems(source_statuses(self.root, self.spec), now, self.spec.alerts.on_stale)
        current += pipeline_problems(self.root)
        ran = {s.source for s in self.summary.steps if s.source}
        ran |= {PIPELINE_PROBLEMS[s.step] for s in self.summary.steps
                if not s.source and s.step in PIPELINE_PROBLEMS}
        # Alert on this run's sources and steps, and on any stale source.
        found = [p for p in current if p["source"] in ran or p["problem"] == "stale"]
        with connect(WarehousePaths(self.root).database) as con:
            self.summary.alerted = notify(
                con, self.spec.alerts, self.run_id, found, current,
                self.spec.defaults.user_agent, now,
                configured={n for n, s in self.spec.sources.items() if s.enabled}
                | set(PIPELINE_PROBLEMS.values()))
        return self.summary


def report_markdown(summary: RunSummary) -> str:
    """The run report as a markdown table (the Prefect artifact)."""
    lines = [f"# SIAE Atlas run {summary.run_id}", "",
             "| step | source | status | in | out | rejected | seconds | message |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for s in summary.steps:
        msg = (s.message or "").replace("|", "\\|")
        lines.append(f"| {s.step} | {s.source or ''} | {s.status} | {s.rows_in or ''} | "
                     f"{s.rows_out or ''} | {s.rejected or ''} | {s.seconds:.2f} | {msg} |")
    lines += ["", f"structures: {summary.structures}; features published: {summary.features}; "
              f"geocoding requests: {summary.geocoding_requests}"]
    if summary.failed_sources:
        lines.append(f"**failed sources** (last good data kept): "
                     f"{', '.join(summary.failed_sources)}")
    if summary.failed_targets:
        lines.append(f"**failed publication targets** (previous release kept): "
                     f"{', '.join(summary.failed_targets)}")
    return "\n".join(lines) + "\n"
