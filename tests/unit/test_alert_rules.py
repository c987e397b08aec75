"""When an alert is posted: new problems at once, open ones again after a delay, recoveries."""

import datetime as dt

from transforms.alert_rules import plan_alerts

NOW = dt.datetime(2026, 11, 26, 6, 0)
DAY = dt.timedelta(days=1)
FAILED = {"source": "emplois", "problem": "failed", "message": "HTTP 500"}
STALE = {"source": "dreets", "problem": "stale", "message": "last success 9 days ago"}


def test_a_new_problem_is_sent_at_once():
    plan = plan_alerts([FAILED], [FAILED], {}, NOW, DAY)
    assert plan.send == [FAILED] and plan.recovered == []


def test_an_open_problem_is_not_repeated_before_repeat_after():
    sent = {("emplois", "failed"): NOW - dt.timedelta(hours=2)}
    assert plan_alerts([FAILED], [FAILED], sent, NOW, DAY).send == []


def test_an_open_problem_is_repeated_once_repeat_after_has_passed():
    sent = {("dreets", "stale"): NOW - DAY}
    assert plan_alerts([STALE], [STALE], sent, NOW, DAY).send == [STALE]


def test_a_problem_that_no_longer_holds_is_announced_as_recovered():
    sent = {("emplois", "failed"): NOW - dt.timedelta(hours=5)}
    plan = plan_alerts([], [], sent, NOW, DAY)
    assert plan.send == []
    assert plan.recovered == [{"source": "emplois", "problem": "failed",
                               "last_alert": "2026-11-26T01:00:00"}]


def test_a_problem_outside_this_run_is_neither_sent_nor_recovered():
    # a consolidation run does not re-alert an ingest failure, nor call it over
    sent = {("emplois", "failed"): NOW - dt.timedelta(days=3)}
    plan = plan_alerts([], [FAILED], sent, NOW, DAY)
    assert plan.send == [] and plan.recovered == []


def test_a_stale_source_that_now_fails_is_a_new_problem():
    sent = {("emplois", "stale"): NOW - dt.timedelta(hours=1)}
    plan = plan_alerts([FAILED], [FAILED], sent, NOW, DAY)
    assert plan.send == [FAILED]
    assert [r["problem"] for r in plan.recovered] == ["stale"]


def test_a_problem_of_a_source_no_longer_configured_is_closed_not_recovered():
    sent = {("emplois", "failed"): NOW - dt.timedelta(hours=5)}
    plan = plan_alerts([], [], sent, NOW, DAY, configured={"dreets"})
    assert plan.recovered == [] and [d["source"] for d in plan.dropped] == ["emplois"]
