"""Where each source's RowMemo lives between stagings: one pickle per source beside the
warehouse (`<home>/cache/staging/<source>.pickle`). A cache, never a record: a file that
is missing, unreadable or made for another fingerprint gives an empty memo, and the rows
are staged afresh."""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path

from transforms.staging import RowMemo


def memo_path(home: Path, source: str) -> Path:
    """The file of a source's memo."""
    return Path(home) / "cache" / "staging" / f"{source}.pickle"


def load_memo(path: Path, fingerprint: str) -> RowMemo:
    """The memo kept at `path` when it was made for `fingerprint`, else an empty one."""
    try:
        with path.open("rb") as fh:
            stored = pickle.load(fh)
        if stored.get("fingerprint") == fingerprint:
            return RowMemo(fingerprint, stored["rows"])
    except Exception:  # noqa: BLE001 - a damaged cache costs a full staging, nothing else
        pass
    return RowMemo(fingerprint)


def save_memo(path: Path, memo: RowMemo) -> None:
    """Keep this staging's outcomes (`memo.kept`) for the next one; written aside then
    renamed, so that a reader never meets half a file. A failure to write is not an error
    (the next staging is only slower)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            pickle.dump({"fingerprint": memo.fingerprint, "rows": memo.kept}, fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
