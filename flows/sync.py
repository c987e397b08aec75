"""The flows: `siae-sync` (fetch → land → stage every source, then consolidate and publish),
`siae-ingest` (one source, for its own schedule) and `siae-consolidate`.

Each step is a Prefect task; a failing source is recorded and skipped, keeping its last good
staging, while the others go on. Every step's outcome lands in `ops.runs`. Each flow ends in the
state that its run report implies (flows/outcome.py), carrying the run summary: call them with
`return_state=True` and read it with `summary_of`.
"""

from __future__ import annotations

import os

from prefect import flow
from prefect.deployments import run_deployment
from prefect.runtime import deployment as prefect_deployment
from prefect.states import State

from flows.consolidation import consolidate
from flows.ingest import ingest, ingest_all, prepare
from flows.outcome import consolidation_state, ingest_state
from flows.run_report import Run, RunSummary
from transforms.spec import load_spec
from warehouse.db import shared_instance
from warehouse.paths import WarehousePaths


@flow(name="siae-sync", log_prints=False)
def sync(
    sources_file: str,
    only: list[str] | None = None,
    home: str | None = None,
    force: bool = False,
    force_publish: bool = False,
) -> State:
    """Fetch, stage, merge, locate and publish; a failing source never stops the others.
    Ends Failed when nothing could be published."""
    spec = load_spec(sources_file)
    with shared_instance():  # one opening of the warehouse for the run's steps
        run = Run(WarehousePaths.resolve(home).ensure().home, spec)
        return consolidation_state(run_pipeline(run, only, force, force_publish))


def run_pipeline(run: Run, only: list[str] | None = None, force: bool = False,
                 force_publish: bool = False) -> RunSummary:
    """The whole job, for the flow above or without Prefect (a direct Run)."""
    selected = run.spec.selected(only)
    communes = prepare(run)
    ingest_all(run, selected, communes, force)
    consolidate(run, force_publish, force)
    return run.finish()


def sync_direct(sources_file: str, only: list[str] | None = None, home: str | None = None,
                force: bool = False, force_publish: bool = False) -> RunSummary:
    """The same job without Prefect (no server, no task retries): for tests and tools."""
    spec = load_spec(sources_file)
    with shared_instance():
        run = Run(WarehousePaths.resolve(home).ensure().home, spec, direct=True)
        return run_pipeline(run, only, force, force_publish)


CONSOLIDATE_DEPLOYMENT = "siae-consolidate/consolidate"


def deployed_sources_file(sources_file: str | None) -> str:
    """A deployment's sources file: its parameter, else the worker's `SIAE_SOURCES` (set by
    prefect.yaml's job variables), else `sources.toml` in the working directory."""
    return sources_file or os.environ.get("SIAE_SOURCES") or "sources.toml"


@flow(name="siae-ingest", log_prints=False)
def ingest_source(source: str, sources_file: str | None = None, home: str | None = None,
                  force: bool = False, trigger_consolidation: bool = True) -> State:
    """Fetch and stage one source; when it changed and this runs as a deployment, trigger
    the consolidation deployment. Ends Failed when the source failed."""
    spec = load_spec(deployed_sources_file(sources_file))
    (src,) = spec.selected([source])
    with shared_instance():
        run = Run(WarehousePaths.resolve(home).ensure().home, spec)
        changed = ingest(run, src, prepare(run), force)
        summary = run.finish()
    note = ""
    if changed and trigger_consolidation and prefect_deployment.id:
        run_deployment(CONSOLIDATE_DEPLOYMENT, timeout=0, as_subflow=False,
                       parameters={"sources_file": sources_file, "home": home})
        run.logger.info("source %s changed: consolidation triggered", source)
        note = "consolidation triggered"
    return ingest_state(summary, source, note)


@flow(name="siae-consolidate", log_prints=False)
def consolidate_publish(sources_file: str | None = None, home: str | None = None,
                        force_publish: bool = False, force: bool = False) -> State:
    """Merge what is staged, geocode, locate and publish (skipping all but the publication
    when nothing they read has changed, unless `force`). Ends Failed when it could not
    publish."""
    spec = load_spec(deployed_sources_file(sources_file))
    with shared_instance():
        run = Run(WarehousePaths.resolve(home).ensure().home, spec)
        prepare(run)
        consolidate(run, force_publish, force)
        return consolidation_state(run.finish())
