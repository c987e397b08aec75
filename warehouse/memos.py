"""Where the memos of reusable work live between runs, beside the warehouse: one pickle per
source for staging (`<home>/cache/staging/<source>.pickle`, transforms.staging.RowMemo) and
one for the merge's clustering (`<home>/cache/clusters.pickle`, transforms.merge.ClusterMemo),
one for the geocoding's queries (`<home>/cache/queries.pickle`, transforms.geocoding.QueryMemo),
each with a delta file of the entries a run added (`load_layered`, `save_layered`).

A memo is a cache, never a record: a file that is missing, unreadable or made for another
fingerprint gives an empty memo, and the work is done afresh. Pickles are read back, so the
warehouse folder must be trusted (as its DuckDB file is)."""

from __future__ import annotations

import contextlib
import os
import pickle
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def memo_path(home: Path, source: str) -> Path:
    """The file of a source's staging memo."""
    return Path(home) / "cache" / "staging" / f"{source}.pickle"


def prune_staging_memos(home: Path, sources: set[str]) -> list[str]:
    """Delete the staging memos (and their delta files) of sources no longer listed; returns
    their names."""
    gone = []
    for path in sorted((Path(home) / "cache" / "staging").glob("*.pickle")):
        name = path.name.removesuffix(".pickle").removesuffix(".delta")
        if name not in sources:
            with contextlib.suppress(OSError):
                path.unlink()
                if name not in gone:
                    gone.append(name)
    return gone


def cluster_memo_path(home: Path) -> Path:
    """The file of the merge's clustering memo."""
    return Path(home) / "cache" / "clusters.pickle"


def query_memo_path(home: Path) -> Path:
    """The file of the geocoding's query memo (transforms.geocoding.QueryMemo)."""
    return Path(home) / "cache" / "queries.pickle"


# A memo file is a header (a dict: fingerprint, ids, how many chunks) and then its entries
# as that many pickles of CHUNK entries each. One pickle of a national memo (13 million
# objects) keeps a table of every object it wrote until it ends: 800 MB more at its peak.
CHUNK = 20_000


def _read(path: Path, fingerprint: str) -> dict | None:
    try:
        with path.open("rb") as fh:
            stored = pickle.load(fh)
            if stored.get("fingerprint") != fingerprint:
                return None
            entries: dict = {}
            for _ in range(stored.pop("chunks")):
                entries.update(pickle.load(fh))
            if fh.read(1):  # more than the header says: not a file _write made
                return None
        return {**stored, "entries": entries}
    except Exception:  # noqa: BLE001 - a damaged cache costs the work again, nothing else
        return None


def _write(path: Path, stored: dict) -> None:
    # written aside then renamed, so that a reader never meets half a file; a failure to
    # write is not an error (the next run is only slower)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    items = list(stored["entries"].items())
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    header = {k: v for k, v in stored.items() if k != "entries"} | {"chunks": len(chunks)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            pickle.dump(header, fh, protocol=pickle.HIGHEST_PROTOCOL)
            for chunk in chunks:  # each its own pickle: its table of objects is dropped
                pickle.dump(chunk, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


@dataclass
class Layered:
    """A memo read from a base file and the delta file beside it: `entries` (the base's
    updated by the delta's), and which base they came from."""

    entries: dict = field(default_factory=dict)
    base: str | None = None  # the base file's id, which its delta names
    base_keys: set = field(default_factory=set)


def _delta_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.delta{path.suffix}")


def load_layered(path: Path, fingerprint: str) -> Layered:
    """The memo at `path` and its delta, when made for `fingerprint` (else empty)."""
    base = _read(path, fingerprint)
    if base is None:
        return Layered()
    entries = base["entries"]
    keys = set(entries)
    delta = _read(_delta_path(path), fingerprint)
    if delta is not None and delta.get("base") == base.get("id"):
        entries.update(delta["entries"])
    return Layered(entries, base.get("id"), keys)


def save_layered(path: Path, fingerprint: str, kept: dict, loaded: Layered) -> None:
    """Keep `kept` for the next run. A national memo takes seconds to write, and a day's
    edits change a few percent of it: the entries the base file lacks go to a small delta
    file, and the base is written again only when the delta, or the base's entries no longer
    kept, grow past a quarter of the memo."""
    extra = {k: v for k, v in kept.items() if k not in loaded.base_keys}
    stale = len(loaded.base_keys) - (len(kept) - len(extra))
    if loaded.base is None or 4 * len(extra) > len(kept) or 4 * stale > len(kept):
        _write(path, {"fingerprint": fingerprint, "id": uuid.uuid4().hex, "entries": kept})
        with contextlib.suppress(OSError):
            _delta_path(path).unlink()
    else:
        _write(_delta_path(path), {"fingerprint": fingerprint, "base": loaded.base,
                                   "entries": extra})
