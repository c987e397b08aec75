"""Per-source health from the warehouse: last success, last failure, rows, freshness; and the
state of the pipeline beyond the sources."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from transforms.spec import Spec
from warehouse import ops
from warehouse.db import connect
from warehouse.paths import WarehousePaths


@dataclass
class SourceStatus:
    source: str
    last_success: dt.datetime | None
    last_failure: dt.datetime | None
    failure_message: str | None
    rows: int | None
    max_age: dt.timedelta | None

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        return now - self.last_success if self.last_success else None

    @property
    def failing(self) -> bool:
        """The newest attempt failed."""
        return self.last_failure is not None and (
            self.last_success is None or self.last_failure > self.last_success)

    def stale(self, now: dt.datetime) -> bool:
        """No success within max_age (never synced counts as stale)."""
        if self.max_age is None:
            return False
        age = self.age(now)
        return age is None or age > self.max_age


def source_statuses(home: Path, spec: Spec | None) -> list[SourceStatus]:
    """One status per enabled source of the spec, in file order; without a spec, one per
    source the warehouse has a run of, by name, with no freshness to judge (no max_age)."""
    paths = WarehousePaths(home)
    health: dict[str, dict] = {}
    if paths.database.exists():
        with connect(paths.database, read_only=True) as con:
            health = ops.source_health(con)
    if spec is None:
        return [SourceStatus(name, h.get("last_success"), h.get("last_failure"),
                             h.get("failure_message"), h.get("rows"), None)
                for name, h in sorted(health.items())]
    out = []
    for name, src in spec.sources.items():
        if not src.enabled:
            continue
        h = health.get(name, {})
        out.append(SourceStatus(name, h.get("last_success"), h.get("last_failure"),
                                h.get("failure_message"), h.get("rows"), src.max_age))
    return out


def problems(statuses: list[SourceStatus], now: dt.datetime,
             include_stale: bool = True) -> list[dict]:
    """What deserves an alert: failing sources, and stale ones when asked."""
    out = []
    for s in statuses:
        if s.failing:
            out.append({"source": s.source, "problem": "failed", "message": s.failure_message,
                        "since": s.last_failure.isoformat(timespec="seconds")})
        elif include_stale and s.stale(now):
            age = s.age(now)
            out.append({"source": s.source, "problem": "stale",
                        "message": (f"last success {age.days} days ago" if age
                                    else "never synced") + f", max_age {s.max_age}",
                        "since": s.last_success.isoformat(timespec="seconds")
                        if s.last_success else None})
    return out


# Pseudo-sources of the pipeline's own problems, in alerts and `siae status --check`.
PIPELINE_PROBLEMS = {"publish": "(publication)", "consolidate": "(consolidation)",
                     "merge": "(consolidation)", "locate": "(consolidation)",
                     "site": "(site)", "snapshot": "(snapshot)", "upload": "(upload)"}


def pipeline_problems(home: Path) -> list[dict]:
    """What stops a publication (a refused or failed publication, a consolidation that
    crashed), as problems like the sources' ones."""
    paths = WarehousePaths(home)
    if not paths.database.exists():
        return []
    with connect(paths.database, read_only=True) as con:
        failures = ops.pipeline_failures(con)
    return [{"source": PIPELINE_PROBLEMS[f["step"]], "problem": "failed",
             "message": f"{f['step']}: {f['message']}",
             "since": f["at"].isoformat(timespec="seconds")} for f in failures]


def pipeline_status(home: Path) -> dict:
    """Beyond the sources: the last consolidation that wrote the core tables, the current
    publication, the open alerts and the match pairs awaiting an analyst."""
    paths = WarehousePaths(home)
    out: dict = {"consolidation": None, "publication": None, "open_alerts": [],
                 "review_pending": None}
    if not paths.database.exists():
        return out
    with connect(paths.database, read_only=True) as con:
        out.update(ops.pipeline_state(con))
        # as of the last consolidation (the judgements file it read)
        out["review_pending"] = ops.pending_review(con)
    return out
