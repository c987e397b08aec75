"""What `siae sync` exits with, as a scheduler reading the code meets each outcome."""

import pytest

from flows.run_report import RunSummary, StepResult


def summary(*steps: tuple[str, str | None, str], published: bool = True) -> RunSummary:
    return RunSummary("run", [StepResult(step, source, status, 0.0)
                              for step, source, status in steps], published=published)


@pytest.mark.parametrize(("steps", "published", "code"), [
    pytest.param([("stage", "emplois", "ok"), ("publish", None, "ok")], True, 0,
                 id="all-ok"),
    pytest.param([("fetch", "emplois", "failed"), ("publish", None, "ok")], True, 2,
                 id="a-source-kept-its-last-good-data"),
    pytest.param([("publish", None, "ok"), ("upload", None, "failed")], True, 2,
                 id="a-target-missed-the-release"),
    pytest.param([("publish", None, "ok"), ("site", None, "failed")], True, 2,
                 id="the-site-failed"),
    pytest.param([("geocode", None, "failed"), ("publish", None, "ok")], True, 2,
                 id="geocoding-failed-cached-answers-used"),
    pytest.param([("publish", None, "ok"), ("snapshot", None, "failed")], True, 2,
                 id="the-snapshot-failed"),
    pytest.param([("merge", None, "failed")], False, 1, id="nothing-published"),
    pytest.param([("geocode", None, "skipped"), ("publish", None, "unchanged")], True, 0,
                 id="unchanged-run"),
])
def test_exit_code(steps, published, code):
    assert summary(*steps, published=published).exit_code == code


def test_failed_steps_name_the_consolidation_steps_only():
    run = summary(("fetch", "emplois", "failed"), ("site", None, "failed"),
                  ("upload", None, "failed"), ("geocode", None, "failed"))
    assert run.failed_steps == ["geocode", "site"]
