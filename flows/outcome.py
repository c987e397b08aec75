"""The Prefect state a flow run ends in, so that Prefect's UI and automations see what the run
report says: a source that failed, or a consolidation that could not publish, ends Failed with
the reason as the state's message; a run that published while a source kept its last good data
ends Completed, with a message saying so. The run summary travels as the state's data."""

from __future__ import annotations

from prefect.states import Completed, Failed, State

from flows.run_report import RunSummary


def _failures(summary: RunSummary, source: str | None = None) -> list[str]:
    return [f"{s.step}{' ' + s.source if s.source else ''}: {s.message or 'failed'}"
            for s in summary.steps
            if s.status == "failed" and (source is None or s.source == source)]


def ingest_state(summary: RunSummary, source: str, note: str = "") -> State:
    """Failed when this source's fetch or staging failed, else Completed."""
    failed = _failures(summary, source)
    if failed:
        return Failed(message=f"source {source} failed, its last good data are kept: "
                              + "; ".join(failed)[:900], data=summary)
    steps = {s.step: s.status for s in summary.steps if s.source == source}
    said = ", ".join(f"{k} {v}" for k, v in steps.items())
    return Completed(message=f"source {source}: {said}{'; ' + note if note else ''}",
                     data=summary)


def consolidation_state(summary: RunSummary) -> State:
    """Failed when no publication is current after the run (merge, location or publication
    failed or was refused) or when a publication target did not get it; Completed otherwise,
    naming the sources that kept their last good data and any step that failed without
    stopping the publication."""
    if not summary.published:
        kept = summary.current_release
        stays = (f"release {kept['release_id']} stays published" if kept
                 else "there is no publication yet")
        reasons = "; ".join(_failures(summary)) or "nothing was published"
        return Failed(message=f"not published ({stays}): {reasons}"[:1000], data=summary)
    uploads = [s for s in summary.steps if s.step == "upload" and s.status == "failed"]
    if uploads:
        # the map sites that read a target did not get this release
        return Failed(message=("published locally, not to every target: "
                               + "; ".join(s.message or "failed" for s in uploads))[:1000],
                      data=summary)
    message = f"published {summary.features} features"
    if summary.failed_sources:
        message += (f"; sources that failed and kept their last good data: "
                    f"{', '.join(summary.failed_sources)}")
    others = [f"{s.step}: {s.message or 'failed'}" for s in summary.steps
              if s.status == "failed" and not s.source]
    if others:
        message += "; also failed: " + "; ".join(others)
    return Completed(message=message[:1000], data=summary)


def summary_of(state: State) -> RunSummary:
    """The run summary carried by a flow run's final state, Completed or Failed."""
    value = state.result(raise_on_failure=False)
    if not isinstance(value, RunSummary):
        raise RuntimeError(f"the flow run ended {state.type.value} without a run summary: "
                           f"{state.message or value!r}")
    return value
