"""Per-source health from the warehouse: last success, last failure, rows, freshness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from flows.alerts import open_alerts
from transforms.spec import Spec
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


def source_statuses(home: Path, spec: Spec) -> list[SourceStatus]:
    """One status per enabled source of the spec, in file order."""
    paths = WarehousePaths(home)
    if not paths.database.exists():
        rows_by_source: dict = {}
        ok: dict = {}
        bad: dict = {}
    else:
        with connect(paths.database, read_only=True) as con:
            # a source succeeds when its stage step is ok or unchanged
            ok = dict(con.execute(
                "SELECT source, max(ended_at) FROM ops.runs WHERE step = 'stage' AND status IN "
                "('ok', 'unchanged') GROUP BY source").fetchall())
            bad = {r[0]: (r[1], r[2]) for r in con.execute(
                "SELECT source, ended_at, message FROM ops.runs WHERE status = 'failed' AND "
                "source IS NOT NULL QUALIFY row_number() OVER (PARTITION BY source ORDER BY "
                "ended_at DESC) = 1").fetchall()}
            rows_by_source = dict(con.execute(
                "SELECT source, rows_staged FROM ops.source_state").fetchall())
    out = []
    for name, src in spec.sources.items():
        if not src.enabled:
            continue
        failure = bad.get(name, (None, None))
        out.append(SourceStatus(name, ok.get(name), failure[0], failure[1],
                                rows_by_source.get(name), src.max_age))
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


def pipeline_status(home: Path) -> dict:
    """Beyond the sources: the last consolidation that wrote the core tables, the current
    publication, the open alerts and the match pairs awaiting an analyst."""
    paths = WarehousePaths(home)
    out: dict = {"consolidation": None, "publication": None, "open_alerts": [],
                 "review_pending": None}
    if not paths.database.exists():
        return out
    with connect(paths.database, read_only=True) as con:
        row = con.execute("SELECT run_id, finished_at, inputs = 'incomplete' FROM "
                          "ops.consolidations ORDER BY finished_at DESC LIMIT 1").fetchone()
        if row:
            out["consolidation"] = {"run_id": row[0], "finished_at": row[1],
                                    "incomplete": row[2]}
        row = con.execute("SELECT release_id, published_at, structures, features FROM "
                          "marts.publications ORDER BY published_at DESC LIMIT 1").fetchone()
        if row:
            out["publication"] = dict(zip(("release_id", "published_at", "structures",
                                           "features"), row, strict=True))
        out["open_alerts"] = [{"source": source, "problem": problem, "last_alert": sent}
                              for (source, problem), sent in sorted(open_alerts(con).items())]
    return out
