"""What a valid sources.toml can still get wrong on this machine: a path that matches no file,
a sheet the workbook does not have, a token variable that is not set. `siae check` reports
them as errors; `siae sync` prints them before it starts (those sources will fail, keeping
their last good data, while the others go on)."""

from __future__ import annotations

import io
import os
import zipfile

from flows.fetch import newest_match
from transforms.readers import guess_format
from transforms.spec import SourceSpec, Spec


def _sheet_problem(src: SourceSpec, data: bytes) -> str | None:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        return f"source '{src.name}': {src.path}: not a readable XLSX workbook ({exc})"
    try:
        names = wb.sheetnames
    finally:
        wb.close()
    if isinstance(src.sheet, int) and src.sheet >= len(names):
        return (f"source '{src.name}': sheet {src.sheet} is out of range: the workbook has "
                f"{len(names)} sheet(s) ({', '.join(names)})")
    if isinstance(src.sheet, str) and src.sheet not in names:
        return f"source '{src.name}': sheet '{src.sheet}' not found (sheets: {', '.join(names)})"
    return None


def source_problems(src: SourceSpec) -> list[str]:
    """Problems of one enabled source that only this machine's files and environment show."""
    out = []
    if src.token_env and not os.environ.get(src.token_env):
        out.append(f"source '{src.name}': environment variable {src.token_env} is not set (it "
                   "holds the API token)")
    for key, pattern in (("path", src.path), ("annexes_path", src.annexes_path)):
        if pattern is None or src.kind == "http":
            continue
        found = newest_match(pattern)
        if found is None:
            out.append(f"source '{src.name}': {key} matches no file ({pattern})")
        elif key == "path" and src.sheet is not None and \
                (src.format or guess_format(found.name)) == "xlsx":
            problem = _sheet_problem(src, found.read_bytes())
            if problem:
                out.append(problem)
    return out


def spec_problems(spec: Spec, only: list[str] | None = None) -> list[str]:
    """The problems of every enabled (or selected) source, in file order."""
    return [p for src in spec.selected(only) for p in source_problems(src)]
