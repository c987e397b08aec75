"""Alerts: a JSON POST to the webhook whose URL is in the environment (never in a file)."""

from __future__ import annotations

import logging
import os

import requests

from transforms.spec import AlertSettings

log = logging.getLogger("siae.alerts")


def send_alert(settings: AlertSettings, run_id: str, problems: list[dict],
               user_agent: str) -> bool:
    """POST {"event", "run_id", "problems"} when there are problems and a webhook is set.
    A failing webhook is logged, never raised: an alert must not break the run."""
    url = os.environ.get(settings.webhook_env)
    if not problems or not url:
        return False
    payload = {"event": "siae.alert", "run_id": run_id, "problems": problems,
               "text": "SIAE Atlas: " + "; ".join(
                   f"{p['source']} {p['problem']}: {p['message']}" for p in problems)}
    try:
        response = requests.post(url, json=payload, timeout=15,
                                 headers={"User-Agent": user_agent})
        response.raise_for_status()
    except requests.RequestException as exc:
        log.warning("alert webhook ($%s) failed: %s", settings.webhook_env, type(exc).__name__)
        return False
    return True
