"""Which alerts are due: new problems at once, open ones again after a delay, and recoveries.

A data team that gets the same "stale" message after every run learns to ignore the channel,
so an open problem is repeated only after `repeat_after`, and its end is announced once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class AlertPlan:
    send: list[dict]  # problems to notify now (new, or open for longer than repeat_after)
    recovered: list[dict]  # open problems that are over: {"source", "problem", "last_alert"}
    dropped: list[dict]  # open problems of sources no longer configured: closed silently


def plan_alerts(found: list[dict], current: list[dict], last_sent: dict[tuple[str, str],
                dt.datetime], now: dt.datetime, repeat_after: dt.timedelta,
                configured: set[str] | None = None) -> AlertPlan:
    """Decide what to notify.

    found: the problems this run may alert on ({"source", "problem", ...});
    current: every problem that holds now, whatever ran (a problem absent from it is over);
    last_sent: (source, problem) → when an alert for that still-open problem was last delivered;
    configured: the sources of sources.toml (an open problem of another one is not "recovered",
    the source is gone).
    """
    send = [p for p in found
            if (sent := last_sent.get((p["source"], p["problem"]))) is None
            or now - sent >= repeat_after]
    holding = {(p["source"], p["problem"]) for p in current}
    over = [{"source": source, "problem": problem,
             "last_alert": sent.isoformat(timespec="seconds")}
            for (source, problem), sent in sorted(last_sent.items())
            if (source, problem) not in holding]
    gone = [o for o in over if configured is not None and o["source"] not in configured]
    return AlertPlan(send, [o for o in over if o not in gone], gone)
