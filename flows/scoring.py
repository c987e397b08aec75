"""Matching, one Prefect task per partition of départements, on the task runner that
`[runtime]` names: Prefect's threads in the flow's process, or a Dask cluster (prefect-dask).

Each task gets its partition as one DataFrame (Prefect passes it as one value, without
walking it) and returns its pairs with the records' positions in the whole set; sorted, they
are the pairs one pass over every record gives."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from transforms.matching import score_pairs
from transforms.partitions import partition_rows
from transforms.settings import MatchingSettings, RuntimeSettings

Scored = list[tuple[int, int, float, str, dict]]


@task(cache_policy=NO_CACHE)
def score_partition(part: pd.DataFrame, settings: MatchingSettings) -> Scored:
    """The candidate pairs of one partition, scored, with positions in the whole set (the
    partition's index)."""
    rows, positions = part.to_dict("records"), part.index.tolist()
    return [(positions[i], positions[j], s, band, f)
            for i, j, s, band, f in score_pairs(rows, settings)]


def partition_count(runtime: RuntimeSettings) -> int:
    """How many partitions: the setting, else one in-process (the GIL gives threads nothing)
    and two per Dask worker (so a slow partition does not leave a worker idle)."""
    if runtime.partitions:
        return runtime.partitions
    if runtime.task_runner == "dask":
        return 2 * (runtime.dask_workers or os.cpu_count() or 1)
    return 1


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
                  direct: bool = False) -> tuple[Scored, int]:
    """(scored pairs sorted by position, partitions used). `direct`: no Prefect, the
    partitions are scored one after the other in this process."""
    records = records.reset_index(drop=True)
    parts = [records.iloc[p] for p in partition_rows(records, partition_count(runtime))]
    if direct:
        results = [score_partition.fn(part, settings) for part in parts]
    else:
        runner = task_runner(runtime)
        with runner if runner is not None else nullcontext():
            submit = (score_partition.submit if runner is None else
                      lambda part, s: runner.submit(score_partition,
                                                    {"part": part, "settings": s}))
            futures = [submit(part, settings) for part in parts]
            results = [f.result() for f in futures]
    return sorted((pair for result in results for pair in result),
                  key=lambda pair: (pair[0], pair[1])), len(parts)
