"""Consolidation: merge the staged sources, geocode, locate, write the core layer, publish;
skipped up to the publication when nothing it reads has changed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.fingerprints import PIPELINE_HASH, file_hash
from flows.geocoder import geocode_structures, make_client
from flows.judgements import load_judgements, read_rows
from flows.publish import publish_release
from flows.run_report import Run, StepResult, run_task
from transforms.geocoding import STREET_TYPES
from transforms.location import disagreements, locate_structures
from transforms.matching import Thresholds, score_pairs
from transforms.merge import Edge, merge_records, record_key
from transforms.spec import GeocoderSettings, Publication, Spec
from transforms.succession import carry_judgements, successions
from warehouse.comments import apply_comments
from warehouse.db import (
    CANDIDATE_TYPES,
    JUDGEMENT_TYPES,
    LINK_TYPES,
    MARTS_SQL,
    RECORD_TYPES,
    STRUCTURE_TYPES,
    connect,
    fetch_frame,
    replace_table,
    table_exists,
)
from warehouse.history import record_history
from warehouse.lock import WarehouseBusy, consolidation_lock
from warehouse.paths import WarehousePaths
from warehouse.reference import commune_shapes


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
        "judgements": file_hash(spec.matching.judgements),
        "replay": file_hash(spec.geocoder.replay),
        "reference": con.execute("SELECT name, version FROM ops.reference_versions "
                                 "ORDER BY name").fetchall(),
        "geocodes_due": retry > 0,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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
        apply_comments(con)  # the tables just replaced lost theirs
        con.execute("COMMIT")
    precision = located["geo_precision"].fillna("none").value_counts().sort_index().to_dict()
    return {"records": len(records), "structures": len(located), "new_ids": len(new),
            "by_precision": precision, "disagreements": len(flags),
            "versions": history["opened"]}


@task(cache_policy=NO_CACHE)
def publish(home: Path, settings: Publication, force: bool = False) -> dict:
    """Build a release of every published file and swap it in (flows.publish)."""
    return publish_release(home, settings, force=force)


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
    merged, err, secs = run_task(merge, spec, root)
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
        answer, err, secs = run_task(geocode, root, spec.geocoder, merged["structures"],
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
    located, err, secs = run_task(locate_and_write, spec, root, merged, geocoded, run.run_id)
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
    published, err, secs = run_task(publish, run.root, run.spec.publication, force_publish)
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
