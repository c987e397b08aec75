"""Consolidation: merge the staged sources, geocode, locate, write the core layer, publish;
skipped up to the publication when nothing it reads has changed.

`merge_geocode_locate` is the one composition of the core steps: `siae sync`, the
consolidation deployment and `siae geocode` all run it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.fingerprints import (
    GEOCODING_CODE,
    PIPELINE_HASH,
    cluster_memo_fingerprint,
    file_hash,
)
from flows.forked import available_memory, can_fork, default_workers, run_forked
from flows.gc_pause import gc_paused_during
from flows.geocoder import GeocodeStats, geocode_structures, make_client
from flows.heap import give_back
from flows.judgements import load_judgements, read_rows
from flows.publish import publish_release
from flows.run_report import Run, StepResult, task_logger
from flows.scoring import score_with_cache
from flows.site import build_site, site_is_current
from flows.targets import publish_to_targets
from transforms.frames import arrow_rows, iter_rows, narrowed, rows_of
from transforms.geocoding import QueryMemo, forget_folded_places
from transforms.location import (
    communes_from_geocoder,
    disagreements,
    forget_polygons,
    locations,
)
from transforms.matching import MATCHED_FIELDS
from transforms.merge import (
    ClusterMemo,
    Edge,
    Spread,
    carry_redirects,
    merge_records,
    record_key,
)
from transforms.postes import poste_rows
from transforms.spec import (
    GeocoderSettings,
    Publication,
    SiteSettings,
    Spec,
    spec_settings_repr,
)
from transforms.succession import Succession, carry_judgements, successions
from warehouse import core, geocodes, match_cache, ops, staging
from warehouse.db import (
    CANDIDATE_TYPES,
    JUDGEMENT_TYPES,
    arrow_table,
    connect,
    frame_of_arrow,
)
from warehouse.lock import WarehouseBusy, consolidation_lock
from warehouse.memos import cluster_memo_path, load_layered, query_memo_path, save_layered
from warehouse.paths import WarehousePaths
from warehouse.reference import commune_shapes, communes_by_code
from warehouse.registry import export_registry
from warehouse.snapshot import write_snapshot


@dataclass
class Merged:
    """The clustering of this run, nothing written yet. The records are not kept: the
    object frame the clustering read is dropped after it (at 1M, 1.4 GB less through
    geocode and locate), and core.records is copied from the stagings they came from."""

    records: staging.StagedRecords  # core.records' rows: the stagings merged
    postes: pd.DataFrame  # the records that list positions (les emplois), as objects
    structures: pd.DataFrame
    # core.links' and core.match_candidates' rows as Arrow: only written, and at 1M an
    # object per cell of 1.1 million links and 200,000 pairs through geocode and locate
    links: pa.Table | None  # None once handed to write_core (`written`)
    # the keys first seen in this run → structure_id (not every key's ID, nor the keys
    # persisted before: at 1M two dicts of 1.5 million keys held through geocode and locate)
    new_ids: dict[str, str]
    current: dict[str, str]  # the keys of this run's places → structure_id
    moved: dict[str, str]  # known keys moved to a new ID (a place split off)
    redirects: dict[str, str]
    candidates: pa.Table | None
    judgements: dict
    successions: list[Succession]
    components_reused: int = 0  # taken from the clustering memo
    components_clustered: int = 0

    def written(self) -> None:
        """Drop what only core.write_core reads (links, pairs, IDs), handed to it: it drops
        each once written. The structures stay, for the geocoder and locating."""
        self.links = self.candidates = None
        self.new_ids, self.current, self.moved = {}, {}, {}


@dataclass
class Geocoded:
    accepted: dict[str, tuple[float, float, str, float]] = field(default_factory=dict)
    stats: GeocodeStats | None = None


@dataclass(frozen=True)
class Located:
    records: int
    structures: int
    new_ids: int
    by_precision: dict[str, int]
    disagreements: int
    versions: int


def consolidation_inputs(con, spec: Spec, now: dt.datetime) -> str:
    """A hash of everything a consolidation reads: the staged sources (content and mapping),
    the settings, the judgements, the reference, the code, and whether cached geocoding
    answers are due to be asked again. Equal hashes give the same result."""
    names = [n for n, s in spec.sources.items() if s.enabled]
    staged = [(s.source, s.sha256, s.spec_fingerprint) for s in staging.source_states(con)
              if s.source in names]
    due = now - dt.timedelta(days=spec.geocoder.retry_failed_after_days)
    parts = {
        "code": PIPELINE_HASH,
        "staged": staged,
        "settings": spec_settings_repr(spec),
        "judgements": file_hash(spec.matching.judgements),
        "replay": file_hash(spec.geocoder.replay),
        "reference": ops.reference_versions(con),
        "geocodes_due": geocodes.answers_due(con, due, spec.geocoder.min_score) > 0,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Staged:
    """What the merge reads: the staged records of the enabled sources, the identities and
    the judgements, with the successions of re-keyed records already carried."""

    names: list[str]
    records: pd.DataFrame
    known: object  # core.Identities
    judgements: dict
    inherited: list[Succession]
    # DuckDB's hash of each record, as numbers (as Python ints: 48 MB more at 1M)
    row_digests: Sequence[int] = field(default_factory=list)
    table: pa.Table | None = None  # the records as DuckDB gave them (core.records' rows)
    postes: pd.DataFrame | None = None  # the records that list positions (les emplois)
    versions: tuple = ()  # the stagings read (staging.staged_versions)


# What the clustering reads of the records frame once they are scored (its rows come from
# `table`): the matcher's fields go after the scoring (at 1M, ~0.5 GB at the merge's peak).
CLUSTERED_FIELDS = ("source", "source_id", "siret", "siret_signature")


@task(cache_policy=NO_CACHE)
def load_staged(spec: Spec, home: Path) -> Staged:
    """Union the staged sources and read the identities the warehouse knows."""
    with connect(WarehousePaths(home).database) as con:
        present = staging.staged_sources(con)
        names = [n for n in spec.sources if n in present and spec.sources[n].enabled]
        if not names:
            raise ValueError("no source has ever been staged: nothing to merge")
        table = staging.staged_table(con, names, digests=True)
        versions = staging.staged_versions(con, names)
        known = core.identities(con, names)
    # Only the matcher's fields and the clustering's become a frame (the successions read
    # the same ones); the others are read from `table`. At 1M a frame of every column, to
    # be narrowed at once, cost 1.4 s and 340 MB more at the step's peak.
    records = frame_of_arrow(table.select(
        [c for c in dict.fromkeys([*CLUSTERED_FIELDS, *MATCHED_FIELDS])
         if c in table.column_names]))
    row_digests = table["row_digest"].to_numpy()
    judgements = load_judgements(spec.matching.judgements)
    # A record re-keyed by its source (a row hash that changed) keeps its place's ID...
    inherited = successions(known.previous, records, known.known, spec.matching)
    # ...and the analysts' judgements on its old key still bind it.
    judgements = carry_judgements(judgements, known.renamed + [(s.old_key, s.new_key)
                                                               for s in inherited])
    # the few records that list positions (les emplois), whole
    listed = table["postes"].cast(pa.string())
    postes = frame_of_arrow(table.filter(
        pc.fill_null(pc.greater(pc.utf8_length(listed), 0), False)))
    return Staged(names, records, known, judgements, inherited, row_digests, table, postes,
                  versions)


# From this many records to cluster, groups of components are clustered by forked
# processes, one per core (pure Python: threads would share one). Below it forking costs
# more than it saves, as for the matching; a day's edits cluster far fewer.
CLUSTER_FORK_FROM = 20_000
# The forked processes' own memory per record they cluster (a batch of rows as dicts,
# their places), measured at 1M: 2,244 MiB for 1.1 million records in two processes, on
# top of the flow's process (4.0 GB before they made their rows a batch at a time).
CLUSTER_FORK_BYTES_PER_RECORD = 2_200


def cluster_spread(table: pa.Table | None = None,
                   fork_from: int = CLUSTER_FORK_FROM) -> Spread:
    """One group per core from `fork_from` records to cluster, each in a forked process,
    which makes its rows from `table` (the records as DuckDB gave them, in their order).
    This process drops `table` once the processes are forked: pass the only reference."""
    workers = default_workers() if can_fork() else 1
    rows = None
    held = {}
    if table is not None:
        held["table"] = table.drop_columns(
            [c for c in ("row_digest",) if c in table.column_names])
        del table

        def rows(mask):
            # rows made from the records frame also copied the pages of the flow's objects
            # they read (at 1M: 4.6 against 4.0 GB of their own in the two processes)
            return arrow_rows(held["table"].filter(pa.array(mask)))
    def forked():
        # the forked processes have the records: the flow holds the places they send back
        # without them (at 1M: 300 MB less at the merge's peak); what the matching freed
        # goes back to the system
        held.clear()
        give_back()

    def run(jobs):
        done = run_forked(jobs, workers, forked=forked)
        give_back()  # what reading the results back freed (at 1M: 180 to 215 MB)
        return done

    return Spread(groups=lambda n: _cluster_groups(n, workers, fork_from), run=run, rows=rows)


def _cluster_groups(records: int, workers: int, fork_from: int) -> int:
    if workers < 2 or records < fork_from:
        return 1
    free, needed = available_memory(), records * CLUSTER_FORK_BYTES_PER_RECORD
    if free is not None and free < needed:
        # one process is slower, not larger: a small machine clusters what it can hold
        task_logger().warning("clustering %d records in one process: %d MB available, "
                              "%d MB needed to fork", records, free >> 20, needed >> 20)
        return 1
    return workers


@task(cache_policy=NO_CACHE)
def cluster(spec: Spec, home: Path, staged: Staged, scored: list) -> Merged:
    """Cluster the records into places from the rules and the matcher's pairs, keeping known
    IDs (nothing written to the warehouse; the clustering memo is kept for the next run)."""
    records, known = staged.records, staged.known
    ids_in = {**known.known, **{s.new_key: s.structure_id for s in staged.inherited}}
    sources, source_ids = records["source"].tolist(), records["source_id"].tolist()

    def key(i: int) -> str:
        # the keys of the records in pairs only: a list of every record's was 86 MB at 1M,
        # held through the clustering
        return record_key(sources[i], source_ids[i])

    edges = [Edge(key(i), key(j), sc) for i, j, sc, band, _ in scored if band == "merge"]
    priority = {n: spec.sources[n].priority for n in staged.names}
    # the components whose records, edges and judgements are the last run's cluster as then
    memo_file, fingerprint = cluster_memo_path(home), cluster_memo_fingerprint(priority)
    stored = load_layered(memo_file, fingerprint)
    memo = ClusterMemo(stored.entries)
    # the records as DuckDB gave them are the spread's alone now (core.records is copied
    # from the stagings they came from: `StagedRecords`)
    spread, staged.table = cluster_spread(staged.table), None
    result = merge_records(records, priority, ids_in, edges, staged.judgements,
                           known.first_seen, memo, staged.row_digests, spread)
    del spread
    if memo.clustered or len(memo.kept) != len(memo.known):  # else the files hold it already
        save_layered(memo_file, fingerprint, memo.kept, stored)
    # Pairs the merge held back (siblings with different SIRETs) wait for an analyst.
    demoted = result.demoted
    candidates = pd.DataFrame(
        [[sources[i], source_ids[i], sources[j], source_ids[j], sc,
          "review" if blocked else band, features_json(f, blocked)]
         for i, j, sc, band, f in scored
         for blocked in [demoted.get(frozenset((key(i), key(j)))) if demoted else None]],
        columns=list(CANDIDATE_TYPES), dtype=object)
    # a merged place's redirect outlives its records (carry_redirects)
    redirects = carry_redirects(known.redirects, result.redirects,
                                result.structures["structure_id"])
    # a set difference in C: a national run has a million and a half keys (a first run's
    # are all new: the same dict, read only, where a copy held 80 MB more through locate)
    new_ids = (result.current if not known.known else
               {k: result.current[k] for k in result.current.keys() - known.known.keys()})
    return Merged(staging.StagedRecords(tuple(staged.names), staged.versions, len(records)),
                  staged.postes,
                  result.structures, result.link_table, new_ids,
                  result.current, result.moved,
                  redirects, arrow_table(candidates, CANDIDATE_TYPES), staged.judgements,
                  staged.inherited, memo.reused, memo.clustered)


def features_json(features: str, blocked: str | None = None) -> str:
    """A pair's features as the scoring gave them (transforms.matching.features_text), with
    why the merge held it back when it did (keys still sorted)."""
    if not blocked:
        return features
    return orjson.dumps({**orjson.loads(features), "blocked": blocked},
                        option=orjson.OPT_SORT_KEYS).decode()


@gc_paused_during
def merge(run: Run) -> tuple[Merged | None, str | None, float, dict]:
    """(merged, error, seconds, matching details): load, score the candidate pairs of the
    communes that changed one task per partition on the `[runtime]` task runner, cluster."""
    staged, err, secs = run.call(load_staged, run.spec, run.root)
    if err:
        return None, err, secs, {}
    t0 = time.perf_counter()
    database = WarehousePaths(run.root).database
    try:
        with connect(database) as con:  # read-write: the schema may predate the cache
            cached = match_cache.load(con)
        matching = score_with_cache(staged.records, staged.row_digests, cached,
                                    run.spec.matching, run.spec.runtime, direct=run.direct)
    except Exception as exc:  # a partition's task failed, or the Dask cluster is unreachable
        return None, f"matching: {exc}", secs + time.perf_counter() - t0, {}
    with connect(database) as con:
        match_cache.save(con, matching.entries, matching.communes)
    matching.entries = {}  # written: at 1M, 110 MB less through the clustering
    staged.records = narrowed(staged.records, *CLUSTERED_FIELDS).copy()
    matching_s = time.perf_counter() - t0
    merged, err, more = run.call(cluster, run.spec, run.root, staged, matching.scored)
    reuse = {} if merged is None else {
        "components_reused": merged.components_reused,
        "components_clustered": merged.components_clustered}
    # the three parts' seconds: the matcher's own growth with the records is the benchmark's
    return merged, err, round(secs + matching_s + more, 3), {
        "partitions": matching.partitions, "communes": len(matching.communes),
        "communes_scored": matching.rescored, "records_scored": matching.records_scored,
        "pairs_scored": matching.pairs_scored, "load_s": round(secs, 2),
        "matching_s": round(matching_s, 2), "clustering_s": round(more, 2), **reuse}


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)
@gc_paused_during  # a query, an answer and a dict per structure (at 1M: 14.3 s with it on)
def geocode(home: Path, settings: GeocoderSettings, structures: pd.DataFrame,
            user_agent: str, resend_all: bool = False,
            progress: Callable[[int, int], None] | None = None) -> Geocoded:
    """Geocode the structures' addresses through the cache (flows.geocoder).

    A DataFrame, not a list of dicts: Prefect walks list parameters item by item (seconds
    for a national run), a DataFrame it passes as one value."""
    client = make_client(settings, user_agent)
    try:
        with connect(WarehousePaths(home).database) as con:
            # the fields of the query only (a national set's rows hold thirty)
            rows = iter_rows(narrowed(structures, "structure_id", "adresse",
                                      "complement_adresse", "code_postal", "commune",
                                      "code_insee"))
            path = query_memo_path(home)
            loaded = load_layered(path, GEOCODING_CODE)
            memo = QueryMemo(loaded.entries)
            accepted, stats = geocode_structures(con, rows, settings,
                                                 client, resend_all=resend_all,
                                                 progress=progress, memo=memo,
                                                 total=len(structures))
            save_layered(path, GEOCODING_CODE, memo.kept, loaded)
    finally:
        client.close()
        forget_folded_places()
    return Geocoded(accepted, stats)


def _postes(merged: Merged) -> list[list]:
    """The rows of core.postes. Few records list positions (les emplois): only those are
    turned into rows, and only their links are looked up."""
    records = merged.postes
    links = merged.links.filter(pc.is_in(merged.links["source_id"], value_set=pa.array(
        records["source_id"].tolist(), pa.string())))
    return poste_rows(rows_of(records), {
        (s, i): sid for sid, s, i in zip(*(links[c].to_pylist() for c in (
            "structure_id", "source", "source_id")), strict=True)})


@task(cache_policy=NO_CACHE)
@gc_paused_during
def locate_and_write(spec: Spec, home: Path, merged: Merged,
                     geocoding: Callable[[], tuple[Geocoded | None, str | None, float]],
                     run_id: str) -> Located:
    """Write the core layer and the marts in one transaction, locating each structure
    (geocoder, source point, commune centre) once `geocoding` gives the geocoder's answers
    (the `geocode` task's outcome: it runs meanwhile, and the records, links and IDs, which
    do not depend on it, are written while it does; a failed geocoding locates without)."""
    now = dt.datetime.now()
    with connect(WarehousePaths(home).database) as con:
        done: dict = {}

        def located() -> tuple[pd.DataFrame, list[list]]:
            answer, err, _ = geocoding()
            geocoded = answer if err is None and answer is not None else Geocoded()
            structures = merged.structures
            # A commune the reference could not find, the geocoder may have (a former name).
            missing = set(structures.loc[structures["code_insee"].isna(), "structure_id"])
            unplaced = {a[4] for sid, a in geocoded.accepted.items()
                        if sid in missing and len(a) > 4 and a[4]}
            structures = communes_from_geocoder(structures, geocoded.accepted,
                                                communes_by_code(con, sorted(unplaced)))
            codes = sorted({c for col in ("code_insee", "code_arrondissement")
                            for c in structures[col] if c})
            columns, done["flags"] = _locations_spread(
                structures, commune_shapes(con, codes), spec.defaults.max_km_outside_commune,
                geocoded.accepted, spec.geocoder.max_km_disagreement)
            give_back()  # what reading the forked processes' results back freed
            done["structures"] = structures.assign(**columns)
            return done["structures"], done["flags"]

        judged = pd.DataFrame(read_rows(spec.matching.judgements),
                              columns=list(JUDGEMENT_TYPES), dtype=object)
        tables = core.CoreTables(
            records=merged.records,
            links=merged.links, candidates=merged.candidates,
            judgements=judged, redirects=merged.redirects, structures=None,
            new_ids=merged.new_ids, moved_ids=merged.moved, seen_keys=merged.current,
            successions=[(s.new_key, s.old_key, s.structure_id, s.score)
                         for s in merged.successions],
            disagreements=None,
            postes=_postes(merged))
        new_ids = len(merged.new_ids)
        merged.written()  # the tables hold the only references: write_core drops them
        history = core.write_core(con, tables, run_id, now, located)
        export_registry(con, WarehousePaths(home).raw)
    out = done["structures"]
    precision = out["geo_precision"].fillna("none").value_counts().sort_index().to_dict()
    return Located(len(merged.records), len(out), new_ids, precision,
                   len(done["flags"]), history["opened"])


# From this many structures, forked processes locate them, a share each (pure Python; below,
# forking costs more than it saves).
LOCATE_FORK_FROM = 20_000


def _locations_spread(structures: pd.DataFrame, shapes: dict, max_km_outside: float,
                      accepted: dict, max_km_disagreement: float
                      ) -> tuple[dict[str, list], list]:
    """`_locations`, from LOCATE_FORK_FROM structures by forked processes, one share of the
    structures each (a structure is located on its own), their columns and flags joined."""
    workers = default_workers() if can_fork() else 1
    if len(structures) < LOCATE_FORK_FROM or workers < 2:
        return _locations(structures, shapes, max_km_outside, accepted, max_km_disagreement)
    size = -(-len(structures) // workers)
    parts = run_forked([functools.partial(_locations, structures.iloc[start:start + size],
                                          shapes, max_km_outside, accepted,
                                          max_km_disagreement)
                        for start in range(0, len(structures), size)], workers)
    columns = {c: [v for part, _ in parts for v in part[c]] for c in parts[0][0]}
    return columns, [flag for _, flags in parts for flag in flags]


def _locations(structures: pd.DataFrame, shapes: dict, max_km_outside: float,
               accepted: dict, max_km_disagreement: float) -> tuple[dict[str, list], list]:
    """The location columns of the structures and their disagreements: what a forked
    process sends back (the structures themselves stay where they are)."""
    try:
        columns = locations(structures, shapes, max_km_outside, accepted)
    finally:
        forget_polygons()
    flags = disagreements(pd.DataFrame({
        "structure_id": structures["structure_id"],
        "coordinate_candidates": structures["coordinate_candidates"], **columns}),
        max_km_disagreement)
    return columns, flags


@task(cache_policy=NO_CACHE)
@gc_paused_during
def publish(home: Path, settings: Publication, force: bool = False,
            link_base: str = "") -> dict:
    """Build a release of every published file and swap it in (flows.publish)."""
    return publish_release(home, settings, force=force, link_base=link_base)


def consolidate(run: Run, force_publish: bool, force: bool = False) -> None:
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
    if not run.summary.published:
        # what map sites still read
        with connect(WarehousePaths(run.root).database) as con:
            run.summary.current_release = ops.pipeline_state(con)["publication"]


def regeocode(run: Run, resend_all: bool = False, failed_now: bool = False,
              progress: Callable[[int, int], None] | None = None) -> bool:
    """`siae geocode`: the same consolidation, with the geocoding asked again (`resend_all`:
    every address; `failed_now`: failed answers whatever their age). Raises WarehouseBusy
    when a consolidation holds the warehouse. No publication: `siae publish` does it."""
    wait = float(os.environ.get("SIAE_CONSOLIDATION_WAIT", "600"))
    with consolidation_lock(run.root, wait):
        settings = run.spec.geocoder
        if failed_now:
            settings = settings.model_copy(update={"retry_failed_after_days": 0})
        start = dt.datetime.now()
        with connect(WarehousePaths(run.root).database) as con:
            inputs = consolidation_inputs(con, run.spec, start)
        if not merge_geocode_locate(run, settings, resend_all, progress):
            return False
        _record_consolidation(run, inputs)
    return True


def _record_consolidation(run: Run, inputs: str) -> None:
    # What the core tables now hold. With a failed geocoding they are incomplete: a marker
    # that no inputs hash equals makes the next run consolidate again.
    complete = all(s.status != "failed" for s in run.summary.steps if s.step == "geocode")
    with connect(WarehousePaths(run.root).database) as con:
        ops.record_consolidation(con, run.run_id, dt.datetime.now(),
                                 inputs if complete else "incomplete")


def _consolidate_locked(run: Run, force_publish: bool, force: bool) -> None:
    spec, root, summary = run.spec, run.root, run.summary
    start = dt.datetime.now()
    with connect(WarehousePaths(root).database) as con:
        inputs = consolidation_inputs(con, spec, start)
        last = ops.last_consolidation(con)
        structures = core.structure_count(con)
    if last and last[0] == inputs and not force:
        # Nothing it reads has changed: merging, geocoding and locating again would give the
        # same tables. The publication step still runs: it is cheap and restores a missing one.
        summary.structures = structures
        run.step(StepResult("consolidate", None, "unchanged", 0.0, rows_out=structures,
                            message=f"staged sources, settings and judgements as in run "
                                    f"{last[1]}: merge, geocoding and location skipped"), start)
        _publish_step(run, force_publish, structures)
        return
    if not merge_geocode_locate(run):
        return  # nothing written: the core tables still match the last recorded inputs
    _record_consolidation(run, inputs)
    _publish_step(run, force_publish, summary.structures)


def merge_geocode_locate(run: Run, settings: GeocoderSettings | None = None,
                         resend_all: bool = False,
                         progress: Callable[[int, int], None] | None = None) -> bool:
    """The consolidation proper; False when a step failed and nothing was written."""
    spec, root, summary = run.spec, run.root, run.summary
    settings = settings or spec.geocoder
    start = dt.datetime.now()
    merged, err, secs, matching = merge(run)
    if err:
        run.step(StepResult("merge", None, "failed", secs, message=err), start)
        return False
    bands = Counter(merged.candidates["band"].to_pylist())
    run.step(StepResult("merge", None, "ok", secs, rows_in=len(merged.records),
                        rows_out=len(merged.structures),
                        details={"matched": bands.get("merge", 0),
                                 "to_review": bands.get("review", 0),
                                 "judgements": len(merged.judgements),
                                 "redirects": len(merged.redirects),
                                 "ids_inherited": len(merged.successions),
                                 **matching}), start)
    # Geocoding runs in a thread while the core tables are written: locate_and_write waits
    # for it only to locate (at 1M the records, links and IDs took 7 s to write).
    start = dt.datetime.now()
    if not settings.enabled:
        run.step(StepResult("geocode", None, "skipped", 0.0,
                            message="[geocoder] enabled = false"), start)
    with (run.beside(geocode, root, settings, merged.structures, spec.defaults.user_agent,
                     resend_all, progress) if settings.enabled
          else nullcontext(lambda: (Geocoded(), None, 0.0))) as geocoding:
        located, err, secs = run.call(locate_and_write, spec, root, merged, geocoding,
                                      run.run_id)
    if settings.enabled:
        _geocode_step(run, *geocoding(), start)
    if err:
        run.step(StepResult("locate", None, "failed", secs, message=err), start)
        return False
    summary.structures = located.structures
    run.step(StepResult("locate", None, "ok", secs, rows_in=located.structures,
                        rows_out=located.structures,
                        details={"by_precision": located.by_precision,
                                 "new_ids": located.new_ids,
                                 "new_versions": located.versions,
                                 "disagreements": located.disagreements}), start)
    return True


def _geocode_step(run: Run, geocoded: Geocoded | None, err: str | None, secs: float,
                  start: dt.datetime) -> None:
    """The geocode step's report: the task failed (`err`), or the geocoder did (its stats)."""
    if err or geocoded is None:
        run.step(StepResult("geocode", None, "failed", secs, message=err), start)
        return
    stats = geocoded.stats
    run.summary.geocoding_requests = stats.requests
    run.step(StepResult(
        "geocode", None, "failed" if stats.error else "ok", secs,
        rows_in=stats.addresses, rows_out=stats.accepted, message=stats.error,
        details={"requests": stats.requests, "sent": stats.sent,
                 "cache_hits": stats.cache_hits, "refused": stats.refused,
                 "pruned": stats.pruned}), start)


def _publish_step(run: Run, force_publish: bool, structures: int) -> bool:
    """Publish a release from the warehouse; False when it failed or was refused."""
    summary = run.summary
    start = dt.datetime.now()
    published, err, secs = run.call(publish, run.root, run.spec.publication, force_publish,
                                    run.spec.site.base_url)
    if err:
        run.step(StepResult("publish", None, "failed", secs, message=err), start)
        return False
    summary.features = published["features"]
    summary.without_coordinates = published["without_coordinates"]
    summary.closed = published["held_back"]["closed"]
    summary.unconfirmed = published["held_back"]["unconfirmed_kinds"]
    summary.published = True
    summary.geojson = published["path"]
    summary.published_by_precision = published["by_precision"]
    details = {"release": published["release"], **published.get("changes", {})}
    run.step(StepResult("publish", None, "ok" if published["status"] == "published"
                        else "unchanged", secs, rows_in=structures,
                        rows_out=published["features"], bytes=sum(published["bytes"].values()),
                        details=details), start)
    _upload_steps(run, force_publish)
    if run.spec.site.build and not site_is_current(run.root):
        start = dt.datetime.now()
        built, err, secs = run.call(site, run.root, run.spec.site)
        run.step(StepResult("site", None, "failed" if err else "ok", secs, message=err,
                            rows_out=None if err else built["structures"],
                            details={} if err else {k: built[k] for k in (
                                "rendered", "reused", "workers")}), start)
    start = dt.datetime.now()
    written, err, secs = run.call(analysts_snapshot, run.root)
    run.step(StepResult("snapshot", None, "failed" if err else "ok", secs, message=err,
                        bytes=None if err else written["bytes"],
                        details={} if err else {"tables": written["tables"],
                                                "copied": written["copied"]}), start)
    return True


def _upload_steps(run: Run, force: bool) -> None:
    """One step per publication target: the current release copied there, then pointed to."""
    if not run.spec.publication.targets:
        return
    start = dt.datetime.now()
    results, err, secs = run.call(upload, run.root, run.spec.publication, force)
    if err:
        run.step(StepResult("upload", None, "failed", secs, message=err,
                            details={"target": ", ".join(run.spec.publication.targets)}), start)
        return
    for r in results:
        status = {"uploaded": "ok", "unchanged": "unchanged"}.get(r.status, "failed")
        run.step(StepResult("upload", None, status, secs / len(results), rows_out=r.objects or None,
                            bytes=r.bytes or None,
                            message=f"{r.target}: " + (r.message or f"release {r.release}"),
                            details={"target": r.target, "release": r.release,
                                     "pruned": r.pruned}), start)


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def upload(home: Path, settings: Publication, force: bool = False) -> list:
    """Copy the current release to every publication target (flows/targets.py)."""
    return publish_to_targets(home, settings, force)


@task(cache_policy=NO_CACHE)
def analysts_snapshot(home: Path) -> dict:
    """Write the analysts' copy of the warehouse and swap it in (warehouse/snapshot.py)."""
    paths = WarehousePaths(home)
    with connect(paths.database) as con:
        return write_snapshot(con, paths.snapshot)


@task(cache_policy=NO_CACHE)
@gc_paused_during
def site(home: Path, settings: SiteSettings) -> dict:
    """Build the mini-site of the publication just made (flows/site.py)."""
    return build_site(home, settings)
