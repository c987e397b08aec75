"""Where the memos of reusable work live between runs, beside the warehouse: one pickle per
source for staging (`<home>/cache/staging/<source>.pickle`, transforms.staging.RowMemo) and
one for the merge's clustering (`<home>/cache/clusters.pickle`, transforms.merge.ClusterMemo).

A memo is a cache, never a record: a file that is missing, unreadable or made for another
fingerprint gives an empty memo, and the work is done afresh. Pickles are read back, so the
warehouse folder must be trusted (as its DuckDB file is)."""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path


def memo_path(home: Path, source: str) -> Path:
    """The file of a source's staging memo."""
    return Path(home) / "cache" / "staging" / f"{source}.pickle"


def prune_staging_memos(home: Path, sources: set[str]) -> list[str]:
    """Delete the staging memos of sources no longer listed; returns their names."""
    gone = []
    for path in sorted((Path(home) / "cache" / "staging").glob("*.pickle")):
        if path.stem not in sources:
            with contextlib.suppress(OSError):
                path.unlink()
                gone.append(path.stem)
    return gone


def cluster_memo_path(home: Path) -> Path:
    """The file of the merge's clustering memo."""
    return Path(home) / "cache" / "clusters.pickle"


def load_memo(path: Path, fingerprint: str) -> dict:
    """The entries kept at `path` when they were made for `fingerprint`, else none."""
    try:
        with path.open("rb") as fh:
            stored = pickle.load(fh)
        if stored.get("fingerprint") == fingerprint:
            return stored["entries"]
    except Exception:  # noqa: BLE001 - a damaged cache costs the work again, nothing else
        pass
    return {}


def save_memo(path: Path, fingerprint: str, entries: dict) -> None:
    """Keep `entries` for the next run; written aside then renamed, so that a reader never
    meets half a file. A failure to write is not an error (the next run is only slower)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            pickle.dump({"fingerprint": fingerprint, "entries": entries}, fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
