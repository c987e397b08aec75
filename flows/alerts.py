"""Alerts: a JSON POST to the webhook whose URL is in the environment (never in a file)."""

from __future__ import annotations

import datetime as dt
import logging
import os

import duckdb
import requests

from transforms.alert_rules import plan_alerts
from transforms.spec import AlertSettings
from warehouse import ops

log = logging.getLogger("siae.alerts")


def notify(con: duckdb.DuckDBPyConnection, settings: AlertSettings, run_id: str,
           found: list[dict], current: list[dict], user_agent: str,
           now: dt.datetime | None = None, configured: set[str] | None = None) -> bool:
    """Post the problems that are due (new, or repeated after `repeat_after`) and the ones that
    are over, and record them in ops.alerts. Returns whether a notification was delivered.

    found: the problems this run may alert on; current: every problem that holds now."""
    url = os.environ.get(settings.webhook_env)
    if not url:
        return False
    now = now or dt.datetime.now()
    plan = plan_alerts(found, current, ops.open_alerts(con), now, settings.repeat_after,
                       configured)
    if plan.dropped:
        ops.record_alerts(con, [(now, run_id, d["source"], d["problem"], "recovered",
                                 "no longer in sources.toml", True) for d in plan.dropped])
    if not plan.send and not plan.recovered:
        return False
    delivered = post_alert(url, settings.webhook_env, run_id, plan.send, plan.recovered,
                           user_agent)
    rows = [(now, run_id, p["source"], p["problem"], "open", p.get("message"), delivered)
            for p in plan.send]
    rows += [(now, run_id, r["source"], r["problem"], "recovered", None, delivered)
             for r in plan.recovered]
    ops.record_alerts(con, rows)
    return delivered


def post_alert(url: str, env_name: str, run_id: str, problems: list[dict],
               recovered: list[dict], user_agent: str) -> bool:
    """POST {"event", "run_id", "problems", "recovered", "text"}. A failing webhook is logged,
    never raised: an alert must not break the run. The URL is never logged."""
    lines = [f"{p['source']} {p['problem']}: {p['message']}" for p in problems]
    lines += [f"{r['source']} recovered ({r['problem']} no more)" for r in recovered]
    payload = {"event": "siae.alert" if problems else "siae.recovered", "run_id": run_id,
               "problems": problems, "recovered": recovered,
               "text": "SIAE Atlas: " + "; ".join(lines)}
    try:
        response = requests.post(url, json=payload, timeout=15,
                                 headers={"User-Agent": user_agent})
        response.raise_for_status()
    except requests.RequestException as exc:
        log.warning("alert webhook ($%s) failed: %s", env_name, type(exc).__name__)
        return False
    return True
