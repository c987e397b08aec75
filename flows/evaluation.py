"""Evaluating the entity resolution: the matcher on labelled pairs, and the whole pipeline on
labelled records (scripts/make_truth_set.py builds such a set from real records)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from flows.consolidation import consolidate
from flows.ingest import ingest, prepare
from flows.run_report import Run
from transforms.fields import BY_NAME, REVIEWED
from transforms.spec import load_spec
from transforms.truth import Labelled, ResolutionScore, score_resolution
from warehouse import core, publications, staging
from warehouse.db import connect
from warehouse.paths import WarehousePaths


def _value(field: str, text: str | None) -> object:
    if not text:
        return [] if BY_NAME[field].type == "list" else None
    kind = BY_NAME[field].type
    if kind == "number":
        return float(text)
    if kind == "list":
        return [t.strip() for t in text.replace("|", ",").split(",") if t.strip()]
    return text


def read_labelled_pairs(path: Path) -> list[tuple[str, str, dict, dict]]:
    """(label, kind, left record, right record) per line of a pairs CSV
    (scripts/make_matching_pairs.py writes one); the reviewed fields absent from the file are
    empty."""
    def side(row: dict, prefix: str) -> dict:
        return {f: _value(f, row.get(f"{prefix}_{f}")) for f in REVIEWED}

    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["label"], r["kind"], side(r, "left"), side(r, "right"))
                for r in csv.DictReader(fh)]


def read_truth(path: Path) -> list[Labelled]:
    """The labelled records of a truth CSV (source, source_id, place, kinds)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return [Labelled(r["source"], r["source_id"], r["place"],
                         frozenset(k for k in r["kinds"].replace("|", ",").split(",") if k),
                         int(r["row_number"]) if r.get("row_number") else None)
                for r in csv.DictReader(fh)]


def evaluate_resolution(sources_file: Path, truth_file: Path, home: Path) -> ResolutionScore:
    """Run the whole pipeline (without Prefect) on the labelled set's sources into `home`,
    then score what it made of the records against the truth."""
    spec = load_spec(sources_file)
    run = Run(WarehousePaths(home).ensure().home, spec, direct=True)
    communes = prepare(run)
    for src in spec.selected():
        ingest(run, src, communes, force=True)
    consolidate(run, force_publish=True, force=True)
    run.finish()
    failed = [s for s in run.summary.steps if s.status == "failed"]
    if failed:
        raise RuntimeError("; ".join(f"{s.step} {s.source or ''}: {s.message}" for s in failed))
    return score_warehouse(spec, truth_file, home, run.run_id)


def score_warehouse(spec, truth_file: Path, home: Path, run_id: str) -> ResolutionScore:
    """Score what the warehouse made of the labelled records (after the run `run_id`, whose
    rejects explain the records it lost)."""
    with connect(WarehousePaths(home).database, read_only=True) as con:
        structure_of = {}
        for source, source_id, row_number, sid in core.record_structures(con):
            structure_of[(source, source_id)] = sid
            structure_of[(source, f"#row{row_number}")] = sid
        published = publications.published_kinds(con)
        rejects = staging.run_rejects(con, run_id)
    why: dict[tuple[str, str], str] = {}
    for source, reason, raw in rejects:
        row = json.loads(raw)
        column = spec.sources[source].mapping.get("source_id", "source_id")
        if row.get(column):
            why[(source, str(row[column]))] = f"rejected: {reason}"
    return score_resolution(read_truth(truth_file), structure_of, published,
                            spec.defaults.kinds, why)
