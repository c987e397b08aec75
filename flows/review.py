"""`siae review`: candidate pairs side by side in the terminal, decisions into the judgements
file (applied from the next run on)."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

from flows.judgements import append_judgement, load_judgements
from transforms.fields import REVIEWED
from transforms.merge import record_key
from warehouse import core
from warehouse.db import connect
from warehouse.paths import WarehousePaths

SHOWN = REVIEWED
ANSWERS = {"s": "same", "d": "different", "u": "unsure"}


def pending_pairs(home: Path, judgements_file: Path | None) -> list[dict]:
    """Review-band candidates not yet judged, best score first, with both records."""
    judged = load_judgements(judgements_file)
    with connect(WarehousePaths(home).database, read_only=True) as con:
        pairs, records = core.review_pairs(con)
    by_key = {record_key(r["source"], r["source_id"]): r for r in records}
    out = []
    for p in pairs:
        left = record_key(p["left_source"], p["left_source_id"])
        right = record_key(p["right_source"], p["right_source_id"])
        if frozenset({left, right}) in judged or left not in by_key or right not in by_key:
            continue
        out.append({**p, "left": by_key[left], "right": by_key[right]})
    return out


def side_by_side(pair: dict, width: int | None = None) -> str:
    """The two records as a three-column table (field, left, right); differences marked."""
    width = width or shutil.get_terminal_size((100, 20)).columns
    col = max(20, (width - 22) // 2)
    lines = [f"score {pair['score']:.2f}   " + ", ".join(
        f"{k} {v}" for k, v in json.loads(pair["features"]).items() if v is not None)]
    head = (f"{'':<20}{pair['left_source']}:{pair['left_source_id']}"[:20 + col]).ljust(20 + col)
    lines.append(head + f"  {pair['right_source']}:{pair['right_source_id']}"[:col + 2])
    for field in SHOWN:
        a, b = pair["left"].get(field), pair["right"].get(field)
        if a in (None, "", []) and b in (None, "", []):
            continue
        a = ", ".join(a) if isinstance(a, list) else ("" if a is None else str(a))
        b = ", ".join(b) if isinstance(b, list) else ("" if b is None else str(b))
        mark = " " if a == b else "≠"
        la, lb = textwrap.wrap(a, col) or [""], textwrap.wrap(b, col) or [""]
        for i in range(max(len(la), len(lb))):
            name = f"{mark} {field}" if i == 0 else ""
            lines.append(f"{name:<20}{(la[i] if i < len(la) else ''):<{col}}  "
                         f"{lb[i] if i < len(lb) else ''}")
    return "\n".join(lines)


def review(home: Path, judgements_file: Path, ask: Callable[[str], str] = input,
           show: Callable[[str], None] = print, limit: int | None = None) -> dict[str, int]:
    """Ask about each pending pair; [s]ame, [d]ifferent, [u]nsure, [n]ext (skip), [q]uit."""
    counts = {"same": 0, "different": 0, "unsure": 0, "skipped": 0}
    pairs = pending_pairs(home, judgements_file)
    show(f"{len(pairs)} pairs to review; decisions go to {judgements_file}")
    for n, pair in enumerate(pairs[:limit] if limit else pairs, start=1):
        show(f"\n[{n}/{len(pairs)}]\n{side_by_side(pair)}")
        while True:
            answer = ask("same place? [s]ame [d]ifferent [u]nsure [n]ext [q]uit: ").strip().lower()
            if answer in ANSWERS or answer in ("n", "q"):
                break
        if answer == "q":
            break
        if answer == "n":
            counts["skipped"] += 1
            continue
        append_judgement(judgements_file, (pair["left_source"], pair["left_source_id"]),
                         (pair["right_source"], pair["right_source_id"]), ANSWERS[answer])
        counts[ANSWERS[answer]] += 1
    return counts
