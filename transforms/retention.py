"""Which landed raw files may go when a source keeps only its latest fetches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable


def raw_to_prune(fetches: Iterable[tuple[str, str, dt.datetime, str]], keep: int,
                 protected_runs: set[str]) -> list[str]:
    """Files to delete, from the (sha256, file_path, fetched_at, run_id) rows of one source's
    successful fetches.

    The files of the `keep` most recent fetches stay (a payload fetched again is kept by its
    latest fetch; the ASP export's two files go together), and so do those of a protected run
    (the one behind the current staging: its raw data must stay to explain it). keep = 0
    keeps everything.
    """
    rows = list(fetches)
    if keep <= 0:
        return []
    last_fetch: dict[str, dt.datetime] = {}
    for _, _, at, run in rows:
        last_fetch[run] = max(at, last_fetch.get(run, at))
    recent = sorted(last_fetch, key=lambda run: (last_fetch[run], run), reverse=True)[:keep]
    kept_runs = set(recent) | protected_runs
    kept = {path for _, path, _, run in rows if run in kept_runs}
    return sorted({path for _, path, _, _ in rows if path and path not in kept})
