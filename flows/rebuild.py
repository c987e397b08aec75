"""`siae rebuild`: a lost or corrupt warehouse rebuilt from the raw payloads alone.

The raw folder holds every landed payload with a manifest per fetch, and a copy of what the
payloads cannot give back (the persisted IDs and successions, the geocoder's answers,
raw/_registry/). A rebuild restores those, stages for each source the fetch its last
consolidated staging was made from (not a newer fetch that was refused: too few rows, a
cut-off file; the newest landed one when the registry does not say), consolidates and
publishes: the same IDs and points, so the same GeoJSON, byte for byte, without the network.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from flows.consolidation import consolidate
from flows.fetch import landed_manifests, latest_manifest
from flows.ingest import Fetched, fetch_sha, prepare, stage_landed
from flows.run_report import Run, RunSummary, StepResult
from transforms.spec import Spec
from warehouse.db import connect, shared_instance
from warehouse.paths import WarehousePaths
from warehouse.registry import import_registry, staged_from


class RebuildRefused(RuntimeError):
    """The warehouse is there and sound: nothing to rebuild."""


def set_aside_damaged(paths: WarehousePaths) -> Path | None:
    """Move a warehouse file that DuckDB cannot open out of the way (kept, for a look);
    refuse when it opens fine."""
    if not paths.database.exists():
        return None
    try:
        connect_plain = duckdb.connect(str(paths.database), read_only=True)
        connect_plain.close()
    except duckdb.Error:
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        aside = paths.database.with_name(f"siae.duckdb.damaged-{stamp}")
        paths.database.rename(aside)
        wal = paths.database.with_name("siae.duckdb.wal")
        if wal.exists():
            wal.rename(aside.with_name(aside.name + ".wal"))
        return aside
    raise RebuildRefused(f"{paths.database} opens fine: move it away first to rebuild it "
                         "from the raw payloads")


def rebuild(spec: Spec, home: Path) -> tuple[RunSummary, Path | None]:
    """Rebuild the warehouse under `home` from its raw folder; returns the run's summary and
    where a damaged warehouse file was set aside."""
    paths = WarehousePaths(home)
    aside = set_aside_damaged(paths)
    with shared_instance():
        run = Run(paths.ensure().home, spec, direct=True)
        communes = prepare(run)
        with connect(paths.database) as con:
            restored = import_registry(con, paths.raw)
        run.logger.info("registry restored: %s", ", ".join(restored) or "nothing")
        staged = staged_from(paths.raw)
        for src in spec.selected():
            manifest = _staged_manifest(paths.raw, src.name, staged.get(src.name))
            if manifest is None:
                run.step(StepResult("stage", src.name, "failed", 0.0,
                                    message=f"source '{src.name}': no landed payload under "
                                            f"{paths.raw / src.name}"), dt.datetime.now())
                continue
            files = [(f["name"], str(paths.raw / src.name / f["file"]))
                     for f in manifest["files"]]
            fetched = Fetched(fetch_sha([f["sha256"] for f in manifest["files"]]),
                              sum(Path(f).stat().st_size for _, f in files), files, False)
            stage_landed(run, src, communes, fetched)
        consolidate(run, force_publish=False, force=True)
        return run.finish(), aside


def _staged_manifest(raw_dir: Path, source: str, sha: str | None) -> dict | None:
    """The landed fetch whose content hash is `sha` (the one behind the source's last
    consolidated staging), else the newest landed one."""
    for doc in landed_manifests(raw_dir, source) if sha else ():
        if fetch_sha([f["sha256"] for f in doc["files"]]) == sha:
            return doc
    return latest_manifest(raw_dir, source)
