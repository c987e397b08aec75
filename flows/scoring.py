"""Matching, one Prefect task per partition of départements, on the task runner that
`[runtime]` names: Prefect's threads in the flow's process, or a Dask cluster (prefect-dask).

Each task gets its partition as one DataFrame (Prefect passes it as one value, without
walking it) and returns its pairs with the records' positions in the whole set; sorted, they
are the pairs one pass over every record gives."""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.fingerprints import MATCHING_CODE
from flows.forked import can_fork, cores, default_workers, run_forked
from transforms.frames import narrowed, rows_of
from transforms.match_cache import (
    commune_digests,
    commune_keys,
    known_pairs,
    new_entries,
    pair_digest,
    reused_pairs,
    stale_communes,
)
from transforms.matching import MATCHED_FIELDS, score_pairs
from transforms.merge import record_key
from transforms.partitions import partition_rows
from transforms.settings import MatchingSettings, RuntimeSettings

Scored = list[tuple[int, int, float, str, dict]]


@dataclass(frozen=True)
class Known:
    """The pairs an earlier scoring gave, for a partition: by pair digest, and what each of
    its records is (key and row digest, by position in the partition)."""

    pairs: dict  # pair digest → (score, band, features)
    records: list[str]
    salt: str

    def __call__(self, i: int, j: int) -> tuple | None:
        return self.pairs.get(pair_digest(self.salt, self.records[i], self.records[j]))


@task(cache_policy=NO_CACHE)
def score_partition(part: pd.DataFrame, settings: MatchingSettings,
                    known: Known | None = None) -> Scored:
    """The candidate pairs of one partition, scored, with positions in the whole set (the
    partition's index). With `known`, the pairs below the review band too (for the cache),
    and the pairs it knows are not scored again."""
    rows, positions = rows_of(part), part.index.tolist()
    return [(positions[i], positions[j], s, band, f)
            for i, j, s, band, f in score_pairs(rows, settings, known,
                                                keep_distinct=known is not None)]


# With the default runner, from this many records to score the partitions are scored by
# forked processes, one per core: below it, forking costs more than it saves.
FORK_FROM = 20_000


def partition_count(runtime: RuntimeSettings, to_score: int = 0) -> int:
    """How many partitions: the setting, else two per Dask worker (so a slow partition does
    not leave a worker idle), else one per core when `to_score` records are enough to
    fork for (threads would gain nothing: the GIL), else one."""
    if runtime.partitions:
        return runtime.partitions
    if runtime.task_runner == "dask":
        return 2 * (runtime.dask_workers or os.cpu_count() or 1)
    return default_workers() if to_score >= FORK_FROM and can_fork() else 1


def task_runner(runtime: RuntimeSettings) -> AbstractContextManager | None:
    """A started-on-enter Dask task runner, or None for the flow's own runner."""
    if runtime.task_runner != "dask":
        return None
    from prefect_dask import DaskTaskRunner  # imported only when asked for

    if runtime.dask_address:
        # the cluster's workers report to the Prefect API their own environment names
        return DaskTaskRunner(address=runtime.dask_address)
    kwargs = {"n_workers": runtime.dask_workers or os.cpu_count(), "threads_per_worker": 1,
              "processes": True, "dashboard_address": None}
    url = _api_url()
    if url:
        # The workers are new processes: without the flow's API address they would start a
        # temporary Prefect server of their own and report the tasks there.
        kwargs["env"] = {"PREFECT_API_URL": url}
    return DaskTaskRunner(cluster_kwargs=kwargs)


def _api_url() -> str | None:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    url = str(ctx.client.api_url) if ctx and ctx.client else os.environ.get("PREFECT_API_URL")
    return url if url and url.startswith(("http://", "https://")) else None


def score_records(records: pd.DataFrame, settings: MatchingSettings, runtime: RuntimeSettings,
                  direct: bool = False, only: Sequence[bool] | None = None,
                  known: Known | None = None) -> tuple[Scored, int]:
    """(scored pairs sorted by position, partitions used). `direct`: no Prefect, the
    partitions are scored one after the other in this process. `only`: score just the
    records marked True (whole communes: blocks never cross one). `known`: the pairs an
    earlier scoring gave (its `records` for every record here); the distinct pairs are
    returned too."""
    # the fields the matcher reads: a row of thirty fields per record cost a third of the
    # scoring, and a Dask worker receives less
    records = narrowed(records, *MATCHED_FIELDS).reset_index(drop=True)
    to_score = len(records) if only is None else sum(only)
    if only is not None:
        # partitions of the records to score, not of every record (balanced work)
        subset = records[list(only)]
        positions = [subset.index[p].tolist()
                     for p in partition_rows(subset, partition_count(runtime, to_score))]
    else:
        positions = partition_rows(records, partition_count(runtime, to_score))
    parts = [records.iloc[p] for p in positions]
    # each partition gets the known pairs of its own communes only (a Dask worker receives
    # them with the partition)
    knowns = [None if known is None else _known_for(known, part) for part in parts]
    if runtime.task_runner != "dask" and len(parts) > 1 and can_fork():
        # pure Python: one forked process per core, which inherits its partition
        results = run_forked([functools.partial(score_partition.fn, part, settings, k)
                              for part, k in zip(parts, knowns, strict=True)],
                             min(len(parts), cores()))
    elif direct or not parts:  # nothing to score: no cluster to start
        results = [score_partition.fn(part, settings, k)
                   for part, k in zip(parts, knowns, strict=True)]
    else:
        runner = task_runner(runtime)
        with runner if runner is not None else nullcontext():
            submit = (score_partition.submit if runner is None else
                      lambda part, s, k: runner.submit(score_partition,
                                                       {"part": part, "settings": s,
                                                        "known": k}))
            futures = [submit(part, settings, k)
                       for part, k in zip(parts, knowns, strict=True)]
            results = [f.result() for f in futures]
    return sorted((pair for result in results for pair in result),
                  key=lambda pair: (pair[0], pair[1])), len(parts)


def _known_for(known: Known, part: pd.DataFrame) -> Known:
    """`known` narrowed to a partition: its records by position in it."""
    return Known(known.pairs, [known.records[p] for p in part.index], known.salt)


@dataclass
class Matching:
    """The scored pairs of every record, and what the cache gave and needs."""

    scored: Scored
    partitions: int
    entries: dict  # the communes scored anew: commune → (digest, pairs by record keys)
    communes: set[str]  # every commune that holds a record
    rescored: int  # communes scored anew
    records_scored: int  # the records in them
    pairs_scored: int = 0  # their candidate pairs that were scored (the others were known)


def score_with_cache(records: pd.DataFrame, row_digests: Sequence, cached: dict,
                     settings: MatchingSettings, runtime: RuntimeSettings,
                     direct: bool = False) -> Matching:
    """Score only the communes whose records changed since the pairs in `cached`
    (ops.match_cache) were found; take the others' pairs from it. The result equals
    `score_records` over every record."""
    records = records.reset_index(drop=True)
    keys = [record_key(s, i) for s, i in zip(records["source"], records["source_id"],
                                             strict=True)]
    communes = commune_keys(records)
    salt = "|".join([MATCHING_CODE, importlib.metadata.version("rapidfuzz"),
                     importlib.metadata.version("duckdb"), str(settings.merge_threshold),
                     str(settings.review_threshold), str(settings.whole_blocks_up_to)])
    # Python values (numpy's would format alike, one call slower each)
    row_digests = (row_digests.tolist() if isinstance(row_digests, np.ndarray)
                   else list(row_digests))
    digests = commune_digests(communes, keys, row_digests, salt)
    stale = stale_communes(digests, cached)
    only = [c in stale for c in communes]
    # In a commune scored again, a pair whose two records are unchanged keeps its score: a
    # day's edits cost their own pairs, not their communes'.
    versions = [f"{k}\t{d}" for k, d in zip(keys, row_digests, strict=True)]
    known = Known(known_pairs(cached, stale), versions, salt)
    fresh, partitions = score_records(records, settings, runtime, direct, only, known)
    pair_digests = [pair_digest(salt, versions[i], versions[j]) for i, j, *_ in fresh]
    scored_anew = sum(1 for d in pair_digests if d not in known.pairs)
    entries = new_entries(digests, stale, communes, keys, fresh, pair_digests)
    reused = reused_pairs(digests, cached, stale, {k: i for i, k in enumerate(keys)})
    scored = sorted([p for p in fresh if p[3] != "distinct"] + reused,
                    key=lambda pair: (pair[0], pair[1]))
    return Matching(scored, partitions, entries, set(digests), len(stale), sum(only),
                    scored_anew)
