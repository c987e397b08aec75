"""Publishing a release: build every file in a new folder, then swap it in with one rename.

Layout under the warehouse home:

    releases/<release_id>/siae.geojson, siae.csv, siae.parquet, siae.gpkg,
                          regions/<code>.geojson, datainclusion/structures.json and .csv,
                          datapackage.json, changes.json, redirects.json
    publish -> releases/<release_id>      (a symbolic link, replaced atomically)

A reader of `publish/siae.geojson` sees the old release or the new one, never a mix. The last
`keep` releases stay beside the current one. A release that would drop more than
`max_drop_share` of the structures of the current one is refused unless forced.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from flows.fingerprints import PIPELINE_HASH
from flows.forked import affordable_workers, default_workers, run_forked
from transforms import datainclusion_export as di
from transforms.datapackage import datapackage, resource
from transforms.frames import arrow_rows
from transforms.geojson import (
    COLLECTION_HEAD,
    COLLECTION_SEPARATOR,
    COLLECTION_TAIL,
    feature_line,
    lines_by_id,
)
from transforms.geopackage import gpkg_bytes
from transforms.invariants import siret_conflicts
from transforms.publication import (
    compute_changes,
    csv_chunks,
    csv_lines_by_id,
    dumps,
    parquet_bytes,
    same_rows,
)
from transforms.spec import Publication
from warehouse import core, publications
from warehouse.db import connect
from warehouse.paths import WarehousePaths

DATA_FILES = ("siae.geojson", "siae.csv", "siae.parquet")
# Under releases/: what the current release was built from, and its report, so that a run
# whose inputs are unchanged answers without rebuilding a single file.
INPUTS_FILE = ".inputs.json"
# Under releases/: the date_maj of each data·inclusion row of the current release written
# without a refusal, so that the next release takes those rows' lines as they are.
DATAINCLUSION_FILE = ".datainclusion.json"


class PublishRefused(RuntimeError):
    """The new release would empty the map too much; the current one stays."""


class PublishError(RuntimeError):
    """The release could not be written (disk full, read-only folder); the current one
    stays."""


def clean_building(paths: WarehousePaths) -> list[str]:
    """Remove the half-built releases a killed or failed publication left behind."""
    if not paths.releases.exists():
        return []
    gone = sorted(p.name for p in paths.releases.glob(".*.building"))
    for name in gone:
        shutil.rmtree(paths.releases / name, ignore_errors=True)
    return gone


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def current_release(paths: WarehousePaths) -> Path | None:
    """The folder `publish` points to (a plain folder from older versions counts too)."""
    link = paths.publish
    if link.is_symlink():
        target = link.resolve()
        return target if target.is_dir() else None
    return link if link.is_dir() and any(link.iterdir()) else None


def _previous_rows(release: Path | None) -> list[dict] | None:
    if release is None or not (release / "siae.parquet").exists():
        return None
    return arrow_rows(pq.read_table(release / "siae.parquet"))


def _stored_of(paths: WarehousePaths, release: Path | None) -> dict | None:
    """What `_store_inputs` kept, when it is about `release`."""
    try:
        stored = json.loads((paths.releases / INPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stored if release is not None and stored.get("release") == release.name else None


def _stored_inputs(paths: WarehousePaths, release: Path | None, key: str) -> dict | None:
    """The stored report of the current release when it was built from these inputs and its
    files are all there; None otherwise."""
    stored = _stored_of(paths, release)
    if (stored is None or stored.get("inputs") != key
            or not all((release / name).is_file() for name in stored.get("files", []))):
        return None
    return stored


def _built_by(paths: WarehousePaths, release: Path | None) -> str | None:
    """What the current release's files were encoded by (code and link_base), as stored."""
    stored = _stored_of(paths, release)
    return stored.get("code") if stored is not None else None


def _datainclusion_dates(paths: WarehousePaths, release: Path) -> dict:
    try:
        stored = orjson.loads((paths.releases / DATAINCLUSION_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return stored.get("dates") or {} if stored.get("release") == release.name else {}


def _store_datainclusion_dates(paths: WarehousePaths, release: Path, dates: dict) -> None:
    tmp = paths.releases / f"{DATAINCLUSION_FILE}.tmp"
    tmp.write_bytes(orjson.dumps({"release": release.name, "dates": dates}))
    os.replace(tmp, paths.releases / DATAINCLUSION_FILE)


def _store_inputs(paths: WarehousePaths, release: Path, key: str, files: list[str],
                  result: dict, code: str) -> None:
    tmp = paths.releases / f"{INPUTS_FILE}.tmp"
    tmp.write_text(json.dumps({"release": release.name, "inputs": key, "files": sorted(files),
                               "result": result, "code": code}, default=str),
                   encoding="utf-8")
    os.replace(tmp, paths.releases / INPUTS_FILE)


@dataclass(frozen=True)
class Reuse:
    """The previous release's folder, the structure_ids of its rows in order, and those whose
    row is unchanged: their GeoJSON, CSV and data·inclusion lines are taken from its files
    as they are."""

    release: Path
    ids: list[str]
    same: frozenset[str]
    # structure_id → the date_maj its data·inclusion row was written with, for the rows
    # written without a refusal (what `export_files` gave; empty when unknown)
    datainclusion: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """A file `write_files` wrote: its size and SHA-256."""

    size: int
    sha256: str


class _JoinedFile:
    """A file holding `head + separator.join(lines) + tail` (`empty` when there is no
    line), written a line at a time, with its size and SHA-256: a national file made whole
    in memory, then joined and encoded, was its size three times over."""

    FLUSH = 1 << 20  # bytes gathered before a write

    def __init__(self, path: Path, head: bytes = b"", separator: bytes = b"",
                 tail: bytes = b"", empty: bytes | None = None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("wb")
        self._head, self._separator, self._tail = head, separator, tail
        self._empty = head + tail if empty is None else empty
        self._digest = hashlib.sha256()
        self._size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._lines = 0

    def add(self, line: bytes) -> None:
        self._pending.append(self._separator if self._lines else self._head)
        self._pending.append(line)
        self._lines += 1
        self._pending_size += len(line) + 2
        if self._pending_size >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        data = b"".join(self._pending)
        self._fh.write(data)
        self._digest.update(data)
        self._size += len(data)
        self._pending, self._pending_size = [], 0

    def close(self) -> Written:
        """Write the tail and close; the file's size and digest."""
        self._pending.append(self._tail if self._lines else self._empty)
        self._flush()
        self._fh.close()
        return Written(self._size, self._digest.hexdigest())

    def abandon(self) -> None:
        self._fh.close()


@contextlib.contextmanager
def _joined_files() -> Iterator[dict[str, _JoinedFile]]:
    """The files a job streams, by name: each closed (and left incomplete) if it fails."""
    files: dict[str, _JoinedFile] = {}
    try:
        yield files
    except BaseException:
        for f in files.values():
            f.abandon()
        raise


def _collection_file(path: Path) -> _JoinedFile:
    return _JoinedFile(path, COLLECTION_HEAD, COLLECTION_SEPARATOR, COLLECTION_TAIL)


def _written(job: Callable[[], tuple[dict[str, bytes | Written], object]], folder: Path
             ) -> tuple[dict[str, Written], object]:
    """Write the files a job made into `folder` (those it wrote itself, given as Written,
    pass as they are); their sizes and digests, and the job's report."""
    files, report = job()
    out = {}
    for name, data in files.items():
        if isinstance(data, Written):
            out[name] = data
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        out[name] = Written(len(data), _sha(data))
    return out, report


def write_files(folder: Path, rows: list[dict], link_base: str = "",
                changed_on: dict | None = None, workers: int = 1, reuse: Reuse | None = None,
                keep: dict | None = None) -> tuple[dict[str, Written], dict]:
    """Write every data file of a release into `folder`; returns each file's size and
    digest by relative path, and the report of the data·inclusion export (rows written,
    left out, values emptied). `link_base`: the site's address, for data·inclusion's
    lien_source; `changed_on`: structure_id → the day its record last changed,
    data·inclusion's date_maj when no source dates it. `workers`: processes that encode the
    formats side by side (flows/forked.py), each writing its files and sending back only
    their size and digest (at 1M the files sent back as bytes were a gigabyte in this
    process); `reuse`: a previous release built by this code with the same link_base. The
    bytes are the same either way. `keep`, when given, receives under "datainclusion" what
    the next build may reuse (`Reuse`)."""
    # the longest first, so that the processes end together
    jobs = [functools.partial(_datainclusion_files, rows, link_base, changed_on, reuse, folder),
            functools.partial(_encoded, gpkg_bytes, "siae.gpkg", rows),
            functools.partial(_geojson_files, rows, reuse, folder),
            functools.partial(_csv_file, rows, reuse, folder),
            functools.partial(_encoded, parquet_bytes, "siae.parquet", rows)]
    workers = affordable_workers(workers if len(rows) >= PARALLEL_FROM else 1,
                                 len(rows) * FORK_BYTES_PER_ROW, "encoding the release")
    parts = run_forked([functools.partial(_written, job, folder) for job in jobs], workers)
    found = {name: written for part, _ in parts for name, written in part.items()}
    order = ["siae.geojson", "siae.csv", "siae.parquet", "siae.gpkg"]
    order += sorted(name for name in found if name.startswith("regions/"))
    order += ["datainclusion/structures.json", "datainclusion/structures.csv"]
    report, clean = parts[0][1]
    if keep is not None:
        keep["datainclusion"] = clean
    return {name: found[name] for name in order}, report


# Below this many structures, starting processes costs more than encoding in one.
PARALLEL_FROM = 5000
# Each encoding process's own memory per published row (the pages of the rows it reads and
# what its format holds), measured at 1M, each job alone: the GeoPackage's 1,087 MiB for
# 370,726 structures is the largest (the streamed GeoJSON, CSV and data·inclusion files
# 290-390 MiB; 4.9 GB in two processes when every file was made whole in memory).
FORK_BYTES_PER_ROW = 3_100


def _encoded(encode, name: str, rows: list[dict]) -> tuple[dict[str, bytes], None]:
    return {name: encode(rows)}, None


def _previous_bytes(reuse: Reuse, name: str) -> bytes:
    try:
        return (reuse.release / name).read_bytes()
    except OSError:  # gone: every line is encoded again
        return b""


def _csv_file(rows: list[dict], reuse: Reuse | None, folder: Path
              ) -> tuple[dict[str, Written], None]:
    """siae.csv, written into `folder` a chunk of rows at a time (the lines of unchanged
    rows read from the previous release's file when given: `reuse`)."""
    kept = None
    if reuse is not None and reuse.same:
        lines = csv_lines_by_id(_previous_bytes(reuse, "siae.csv"), reuse.ids)
        kept = {sid: line for sid, line in lines.items() if sid in reuse.same}
        del lines
    with _joined_files() as files:
        files["siae.csv"] = out = _JoinedFile(folder / "siae.csv")
        for text in csv_chunks(rows, kept):
            out.add(text.encode("utf-8"))
        return {name: f.close() for name, f in files.items()}, None


def _geojson_files(rows: list[dict], reuse: Reuse | None, folder: Path
                   ) -> tuple[dict[str, Written], None]:
    """The GeoJSON of every structure on the map, and one per région, written into `folder`
    a feature at a time, in structure_id order (the lines of unchanged rows read from the
    previous release's file when given: `reuse`)."""
    kept: dict[str, bytes] = {}
    if reuse is not None and reuse.same:
        previous = lines_by_id(_previous_bytes(reuse, "siae.geojson"))
        kept = {sid: line for sid, line in previous.items() if sid in reuse.same}
        del previous
    # a région whose structures have no point gets an empty file
    regions = sorted({r["region"] for r in rows if r.get("region")})
    with _joined_files() as files:
        files["siae.geojson"] = national = _collection_file(folder / "siae.geojson")
        for region in regions:
            files[f"regions/{region}.geojson"] = _collection_file(
                folder / "regions" / f"{region}.geojson")
        for r in sorted(rows, key=_structure_id):
            line = kept.get(r["structure_id"])
            if line is None and (line := feature_line(r)) is None:
                continue  # no point: not on the map
            national.add(line)
            if region := r.get("region"):
                files[f"regions/{region}.geojson"].add(line)
        return {name: f.close() for name, f in files.items()}, None


def _structure_id(row: dict) -> str:
    return row["structure_id"]


def _datainclusion_files(rows: list[dict], link_base: str, changed_on: dict | None,
                         reuse: Reuse | None, folder: Path
                         ) -> tuple[dict[str, Written], tuple]:
    """data·inclusion's structures.json and structures.csv, written into `folder` a row at
    a time in structure_id order; (the export's report, what the next one may reuse)."""
    kept = None
    if reuse is not None and reuse.same and reuse.datainclusion:
        lines = di.previous_lines(_previous_bytes(reuse, "datainclusion/structures.json"),
                                  _previous_bytes(reuse, "datainclusion/structures.csv"))
        kept = {sid: (*pair, reuse.datainclusion[sid]) for sid, pair in lines.items()
                if sid in reuse.same and sid in reuse.datainclusion}
        del lines
    export = di.Export(link_base, changed_on, kept)
    with _joined_files() as files:
        files["datainclusion/structures.json"] = as_json = _JoinedFile(
            folder / "datainclusion" / "structures.json", di.JSON_HEAD.encode(),
            di.JSON_SEPARATOR.encode(), di.JSON_TAIL.encode(), di.JSON_EMPTY.encode())
        files["datainclusion/structures.csv"] = as_csv = _JoinedFile(
            folder / "datainclusion" / "structures.csv", di.CSV_HEAD.encode(),
            empty=di.CSV_HEAD.encode())
        for row in sorted(rows, key=_structure_id):
            if (pair := export.lines(row)) is not None:
                as_json.add(pair[0].encode("utf-8"))
                as_csv.add(pair[1].encode("utf-8"))
        written = {name: f.close() for name, f in files.items()}
    return written, (export.report(), export.clean)


def _swap(paths: WarehousePaths, release_dir: Path) -> None:
    link = paths.publish
    if link.exists() and not link.is_symlink():
        # A plain folder from an older layout becomes a release of its own.
        legacy = paths.releases / f"legacy-{dt.datetime.now():%Y%m%dT%H%M%S}"
        link.rename(legacy)
    tmp = link.with_name(".publish.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(release_dir, link.parent))
    os.replace(tmp, link)


def _prune(paths: WarehousePaths, keep: int, current: Path) -> list[str]:
    releases = sorted(p for p in paths.releases.iterdir() if p.is_dir() and p != current)
    dropped = releases[: max(0, len(releases) - keep)]
    for p in dropped:
        shutil.rmtree(p)
    return [p.name for p in dropped]


def publish_release(home: Path, settings: Publication | None = None, force: bool = False,
                    redirects: dict[str, str] | None = None, link_base: str = "") -> dict:
    """Build and swap in a release from `marts.siae`; report what was done. `link_base`: the
    mini-site's address (`[site] base_url`), for links to each structure's page."""
    settings = settings or Publication()
    paths = WarehousePaths(home).ensure_releases()
    clean_building(paths)  # callers hold the consolidation lock: no publication is running
    current = current_release(paths)
    with connect(paths.database) as con:
        conflicts = siret_conflicts(core.structures_with_several_sirets(con),
                                    core.same_judgements(con))
        key = _sha(json.dumps([PIPELINE_HASH, link_base,
                               publications.inputs_digest(con)]).encode())
        # what encodes the files: the current release's lines serve again only if the same
        code = _sha(json.dumps([PIPELINE_HASH, link_base]).encode())
        # (redirects given by the caller are not in the digest: build then)
        stored = (None if force or redirects is not None
                  else _stored_inputs(paths, current, key))
        if stored is not None and not conflicts:
            # Change first: nothing a release is built from has changed since the current
            # one, so building every file again would give the same bytes.
            # (the counts held back come from core.structures, not from the digest)
            return {**stored["result"], "held_back": publications.held_back(con),
                    "status": "unchanged", "release": current.name,
                    "path": str(paths.geojson)}
        rows = publications.published_rows(con)
        changed_on = publications.version_dates(con)
        held = publications.held_back(con)
        sources = publications.source_contents(con)
        if redirects is None:
            redirects = publications.redirects(con)
    if conflicts:
        shown = "; ".join(f"{sid} holds {', '.join(sirets)}" for sid, sirets in conflicts[:5])
        raise PublishRefused(
            f"{len(conflicts)} structure(s) hold SIRETs that no recorded succession links "
            f"({shown}): the current publication is kept")
    previous = _previous_rows(current)
    features = sum(1 for r in rows if r.get("latitude") is not None)
    if features == 0:
        raise PublishRefused("no structure has coordinates: the last publication is kept")
    if previous and not force and len(rows) < (1 - settings.max_drop_share) * len(previous):
        raise PublishRefused(
            f"the new publication has {len(rows)} structures against {len(previous)} in the "
            f"current one, a drop over {settings.max_drop_share:.0%}: refused, the current "
            "publication is kept (siae publish --force to publish anyway)")
    # a 1% edit leaves 99% of the GeoJSON, CSV and data·inclusion lines as they were:
    # taken from the current release's files, not encoded again
    same = frozenset(same_rows(previous, rows)) if previous else frozenset()
    reuse = (Reuse(current, [r["structure_id"] for r in previous], same,
                   _datainclusion_dates(paths, current))
             if previous and _built_by(paths, current) == code else None)
    release = _Release(rows, previous, current, redirects, sources, held, same, reuse,
                       features, key, code, link_base, changed_on)
    # Each file is written where it is encoded, into a folder renamed to the release's name
    # once complete: a reader never meets half a release.
    building = paths.releases / f".{dt.datetime.now():%Y%m%dT%H%M%S.%f}.building"
    try:
        return _write_release(paths, building, release, settings)
    except OSError as exc:
        # a full disk, a read-only folder: nothing half-written stays, the current release
        # stays, and the message says where
        shutil.rmtree(building, ignore_errors=True)
        where = exc.filename or building
        raise PublishError(f"could not write {where}: {exc.strerror or exc}; the current "
                           "publication is kept") from exc
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _same_file(path: Path, other: Path) -> bool:
    """Whether two files hold the same bytes, read a megabyte at a time: the first that
    differs ends it."""
    if not other.is_file() or path.stat().st_size != other.stat().st_size:
        return False
    with path.open("rb") as a, other.open("rb") as b:
        while True:
            chunk = a.read(1 << 20)
            if chunk != b.read(1 << 20):
                return False
            if not chunk:
                return True


@dataclass(frozen=True)
class _Release:
    """What a release is built from, read by `publish_release` before it builds."""

    rows: list[dict]  # marts.siae, by structure_id
    previous: list[dict] | None  # the current release's rows
    current: Path | None  # the current release's folder
    redirects: dict[str, str]
    sources: list  # (source, sha256, staged_at, rows) of each staged source
    held: dict  # structures kept back, by reason
    same: frozenset[str]  # structure_ids whose row is the current release's
    reuse: Reuse | None  # the current release's lines, when encoded the same way
    features: int  # rows with a point
    key: str  # the digest of the inputs (an unchanged publication is answered from it)
    code: str  # the digest of what encodes the files
    link_base: str
    changed_on: dict  # structure_id → the day its record last changed


def _write_release(paths: WarehousePaths, building: Path, release: _Release,
                   settings: Publication) -> dict:
    rows, previous, current = release.rows, release.previous, release.current
    redirects, held, features = release.redirects, release.held, release.features
    key, code = release.key, release.code
    keep: dict = {}
    building.mkdir()
    written, di_report = write_files(building, rows, release.link_base, release.changed_on,
                                     settings.workers or default_workers(), release.reuse,
                                     keep)
    # Merged IDs, so that a map site holding an old ID can follow it to the surviving one.
    small = {"redirects.json": dumps({"redirects": [{"from": k, "to": v}
                                                    for k, v in sorted(redirects.items())]})}
    by_precision: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.get("latitude") is not None:
            by_precision[r.get("geo_precision") or "unknown"] += 1
    result = {"structures": len(rows), "features": features, "held_back": held,
              "by_precision": dict(sorted(by_precision.items())),
              "without_coordinates": len(rows) - features, "datainclusion": di_report,
              "bytes": {k: w.size for k, w in written.items() if k in DATA_FILES}}
    # compared as they are: the first file that differs ends it (a digest of each national
    # file on both sides costs seconds)
    if current is not None and all(
            (current / name).is_file() and (current / name).read_bytes() == data
            for name, data in small.items()) and all(
            _same_file(building / name, current / name) for name in written):
        shutil.rmtree(building)
        _store_inputs(paths, current, key, [*written, *small], result, code)
        _store_datainclusion_dates(paths, current, keep["datainclusion"])
        return {**result, "status": "unchanged", "release": current.name,
                "path": str(paths.geojson)}

    # "Data of": when the newest source content was staged (stable while inputs are),
    # else now for a warehouse filled by other means.
    created = max((s[2] for s in release.sources), default=None) or dt.datetime.now()
    # Microseconds so that names sort in publication order, even within one second.
    release_id = f"{dt.datetime.now():%Y%m%dT%H%M%S.%f}-{written['siae.parquet'].sha256[:8]}"
    # The change log lists the redirects of IDs that the previous release still published.
    previous_ids = {r["structure_id"] for r in previous or []}
    changes = compute_changes(previous, rows, settings.move_threshold_m,
                              {k: v for k, v in redirects.items() if k in previous_ids},
                              release.same)
    changes = {"release": release_id, "previous": current.name if current else None, **changes}
    small["changes.json"] = dumps(changes)
    resources = [resource(name, w.size, w.sha256) for name, w in sorted(written.items())]
    small["datapackage.json"] = dumps(datapackage(
        resources,
        [{"name": s[0], "sha256": s[1], "staged_at": s[2].isoformat(timespec="seconds"),
          "rows": s[3]} for s in release.sources],
        created, len(rows)))
    for name, data in small.items():
        (building / name).write_bytes(data)
    files = {**written, **{name: Written(len(data), _sha(data)) for name, data in small.items()}}
    release_dir = paths.releases / release_id
    building.rename(release_dir)
    _swap(paths, release_dir)
    pruned = _prune(paths, settings.keep, release_dir)
    counts = {k: len(changes[k]) for k in ("added", "removed", "moved", "changed")}
    _store_inputs(paths, release_dir, key, list(files), result, code)
    _store_datainclusion_dates(paths, release_dir, keep["datainclusion"])
    with connect(paths.database) as con:
        publications.record_publication(
            con, release_id, dt.datetime.now(), len(rows), features, counts,
            {k: {"bytes": w.size, "sha256": w.sha256} for k, w in sorted(files.items())},
            current.name if current else None)
    return {**result, "status": "published", "release": release_id, "changes": counts,
            "pruned": pruned, "path": str(paths.geojson)}


def list_publications(home: Path) -> list[tuple]:
    """Every recorded publication, newest first."""
    paths = WarehousePaths(home)
    with connect(paths.database) as con:
        return publications.publications(con)

