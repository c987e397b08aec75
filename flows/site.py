"""`siae site build`: the static mini-site of the current publication.

No server-side code: HTML pages (Jinja2, autoescaped), the data the map page loads (a compact
index, details per région, the communes for "près de…", the départements' outlines) with
pre-compressed `.gz` and `.br` copies, Leaflet and its clusters copied from their PyPI
packages. Any static host serves it. Built in a folder of its own, then swapped in by one
rename (`<home>/site` is a link, like `publish`), so a visitor never sees half a site.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import orjson
import pyarrow.parquet as pq
import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster
from jinja2 import Environment, FileSystemLoader, select_autoescape

from flows.forked import affordable_workers, can_fork, default_workers, run_forked
from flows.publish import current_release
from transforms.compression import brotli_copy, gzip_copy
from transforms.frames import arrow_rows
from transforms.outlines import departement_outlines, outlines_geojson
from transforms.site import (
    INDEX_FIELDS,
    KINDS,
    MAINLAND,
    OVERSEAS,
    area_summary,
    by_area,
    details,
    index_rows,
    json_ld,
    phone_display,
    safe_url,
    script_json,
)
from transforms.spec import SiteSettings
from warehouse import ops, publications, reference
from warehouse.db import close_shared, connect
from warehouse.paths import WarehousePaths

WEBMAP = Path(__file__).resolve().parent.parent / "webmap"
FIELD_LABELS = {
    "nom": "Nom", "enseigne": "Enseigne", "siret": "SIRET", "types": "Types",
    "adresse": "Adresse", "complement_adresse": "Complément d'adresse",
    "code_postal": "Code postal", "commune": "Commune", "telephone": "Téléphone",
    "courriel": "Courriel", "site_web": "Site internet", "description": "Présentation",
    "date_maj": "Mise à jour",
}


class SiteError(RuntimeError):
    """No publication to build a site from, or the site could not be written."""


def _json_bytes(doc: object) -> bytes:
    # orjson writes what `json` writes here (numbers below 1e-4 aside: 1e-6 for 1e-06), in
    # a third of the time: the map's index is 44 MB at national size; `json` for the rest
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def digest(doc: object) -> str:
    """A short digest of a JSON-able value (dates and the like as text), stable across runs.
    orjson: a rebuild digests every page's inputs, three times faster than with `json`."""
    text = orjson.dumps(doc, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(text, digest_size=16).hexdigest()


class _Reuse:
    """The files of the previous site that the new one shares, as hard links, because what
    they are made from is unchanged. Each file's key (a digest of its inputs) is kept in a
    manifest beside the site's folder; a rebuild renders only the pages whose key changed,
    so a re-run after a 1% edit costs 1% of the pages, not all of them."""

    def __init__(self, previous: Path | None, manifest: dict[str, str]):
        self.previous, self.manifest = previous, manifest
        self.keys: dict[str, str] = {}
        self.reused = 0
        self._folders: set[str] = set()  # made already: one mkdir per folder, not per file

    @classmethod
    def of_site(cls, link: Path) -> _Reuse:
        """The site behind `link` (`<home>/site`), or nothing to reuse."""
        if not link.exists():
            return cls(None, {})
        previous = link.resolve()
        try:
            manifest = json.loads(_manifest_path(previous).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(None, {})
        return cls(previous, manifest if isinstance(manifest, dict) else {})

    def take(self, folder: Path, relative: str, key: str, suffixes=("",)) -> bool:
        """Link `relative` (and its compressed copies) from the previous site when its key is
        the same; False when the file has to be written."""
        self.keys[relative] = key
        if self.previous is None or self.manifest.get(relative) != key:
            return False
        made = []
        # plain strings: pathlib's objects cost more than the link itself, 370,000 times
        target, source = os.path.join(folder, relative), os.path.join(self.previous, relative)
        parent = os.path.dirname(target)
        try:
            if parent not in self._folders:
                os.makedirs(parent, exist_ok=True)
                self._folders.add(parent)
            for suffix in suffixes:
                os.link(source + suffix, target + suffix)
                made.append(target + suffix)
        except OSError:  # gone, or another file system: write it afresh
            for new in made:
                with contextlib.suppress(OSError):
                    os.unlink(new)
            return False
        self.reused += 1
        return True


def _manifest_path(site: Path) -> Path:
    # beside the folder, not in it: a static host would serve it
    return site.with_name(f"{site.name}.files.json")


_CODE = [Path(__file__), Path(__file__).resolve().parent.parent / "transforms" / "site.py"]


@functools.cache
def _code_key() -> str:
    """What every page is made with: the templates and the code that fills them."""
    files = sorted((WEBMAP / "templates").glob("*")) + _CODE
    return digest([f.read_text(encoding="utf-8") for f in files])


# Compressed copies of the large files that rarely change (the communes' list, the outlines),
# by content: a long-lived process (`siae serve`) compresses them once, not at every build.
_COMPRESSED: OrderedDict[tuple, tuple[bytes, bytes] | bytes] = OrderedDict()


CODECS = {".gz": gzip_copy, ".br": brotli_copy}


def _compress(data: bytes) -> tuple[bytes, bytes]:
    return gzip_copy(data), brotli_copy(data)


def _compressed(data: bytes, suffix: str | None = None) -> tuple[bytes, bytes] | bytes:
    """Both compressed copies of `data` (.gz, .br), or the one of `suffix`; the large ones
    kept in memory by content for the next build of a long-lived process."""
    if len(data) < 65536:
        return _compress(data) if suffix is None else CODECS[suffix](data)
    key = (hashlib.sha256(data).hexdigest(), suffix)
    if key in _COMPRESSED:
        _COMPRESSED.move_to_end(key)
    else:
        _COMPRESSED[key] = _compress(data) if suffix is None else CODECS[suffix](data)
        while len(_COMPRESSED) > 16:
            _COMPRESSED.popitem(last=False)
    return _COMPRESSED[key]


def _kept_compressed(data: bytes) -> tuple[bytes, bytes]:
    """The compressed copies of a file made from the communes reference only, kept in its
    cache folder by content: a new home's first site does not compress them again."""
    folder = reference.cache_folder() / "compressed"
    stem = folder / hashlib.sha256(data).hexdigest()[:32]
    gz_path, br_path = stem.with_suffix(".gz"), stem.with_suffix(".br")
    with contextlib.suppress(OSError):
        return gz_path.read_bytes(), br_path.read_bytes()
    gz, br = _compressed(data)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        for path, body in ((gz_path, gz), (br_path, br)):
            tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
            tmp.write_bytes(body)
            tmp.replace(path)
    return gz, br


# A file to write with its compressed copies: its bytes, or the release's file that holds
# them (read by the process that compresses it, so that the flow's process never holds a
# national release's 600 MB of downloads).
Content = bytes | Path


def _size(data: Content) -> int:
    return data.stat().st_size if isinstance(data, Path) else len(data)


def _place(path: Path, data: Content) -> bytes:
    """Write the file itself (a release's file is linked: it never changes); its bytes."""
    if isinstance(data, Path):
        _link_or_copy(data, path)
        return data.read_bytes()
    path.write_bytes(data)
    return data


def _write_compressed(path: Path, data: Content, lasting: bool = False) -> None:
    """Write a file with its pre-compressed copies (.gz, .br); `lasting`: made from the
    communes reference only, so its copies are kept between builds and homes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _place(path, data)
    gz, br = _kept_compressed(data) if lasting else _compressed(data)
    path.with_name(path.name + ".gz").write_bytes(gz)
    path.with_name(path.name + ".br").write_bytes(br)


def _write_copy(path: Path, data: Content, suffix: str) -> None:
    """Write one compressed copy of a file (and the file itself with its .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gz":
        data = _place(path, data)
    elif isinstance(data, Path):
        data = data.read_bytes()
    path.with_name(path.name + suffix).write_bytes(_compressed(data, suffix))


# From this many bytes, a file's .gz and .br are two jobs: the processes share the largest
# files' compressing (a national release's downloads are 600 MB of text).
SPLIT_FROM = 1 << 20


def _compress_jobs(folder: Path, files: list[tuple[str, Content, bool]]
                   ) -> list[Callable[[], None]]:
    """The jobs that write `files` with their compressed copies, the largest first, so that
    the processes end together."""
    jobs: list[Callable[[], None]] = []
    for relative, data, lasting in sorted(files, key=lambda f: -_size(f[1])):
        if lasting or _size(data) < SPLIT_FROM:
            jobs.append(functools.partial(_write_compressed, folder / relative, data, lasting))
        else:
            jobs += [functools.partial(_write_copy, folder / relative, data, suffix)
                     for suffix in CODECS]
    return jobs


@functools.cache
def _environment() -> Environment:
    # one per process: Jinja compiles each template once (they ship with the code)
    env = Environment(loader=FileSystemLoader(WEBMAP / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["phone"] = phone_display
    env.filters["safe_url"] = safe_url
    env.globals.update(KINDS=KINDS)
    return env


def _report(settings: SiteSettings, r: dict) -> str | None:
    if not settings.report_url:
        return None
    from urllib.parse import quote

    return settings.report_url.replace("{id}", quote(r["structure_id"])).replace(
        "{nom}", quote(r.get("nom") or ""))


def build_site(home: Path, settings: SiteSettings | None = None, out: Path | None = None,
               base_url: str | None = None) -> dict:
    """Build the site of the current publication; into `out` when given, else into
    `<home>/sites/<release>` swapped in as `<home>/site`. Returns counts and the folder."""
    settings = settings or SiteSettings()
    base = (base_url if base_url is not None else settings.base_url).rstrip("/")
    paths = WarehousePaths(home)
    release = current_release(paths)
    if release is None or not (release / "siae.parquet").exists():
        raise SiteError(f"no publication in {paths.publish}: run `siae sync` first")
    rows = arrow_rows(pq.read_table(release / "siae.parquet"))
    changes = json.loads((release / "changes.json").read_text()) \
        if (release / "changes.json").exists() else {}
    redirects = json.loads((release / "redirects.json").read_text()).get("redirects", []) \
        if (release / "redirects.json").exists() else []
    package = json.loads((release / "datapackage.json").read_text())
    reuse = _Reuse.of_site(paths.home / "site")
    with connect(paths.database, read_only=True) as con:
        areas = reference.area_names(con)
        communes = _communes_json(con)
        outline = _outline(con, areas)
        keys = _structure_keys(rows, publications.provenance_digests(con),
                               _page_key(settings, base), areas)
        # the provenance of the pages to render only: reading every value of a national site
        # costs seconds, and a rebuild renders a few pages. A first build renders them all:
        # each page maker reads its own share's (at 1M, the whole took 4.5 s in this process
        # alone, and 1.9 GB held through the build).
        render = set() if reuse.previous is None else {
            sid for sid, key in keys.items() if reuse.manifest.get(_structure_page(sid)) != key}
        sources = publications.value_sources(con, render)
    close_shared()  # the page makers forked below open the warehouse themselves
    added = {a["structure_id"] for a in changes.get("added", [])} if changes.get("previous") \
        else set()

    def provenance_of(ids: list[str]) -> dict:
        with connect(paths.database, read_only=True) as con:
            return publications.value_sources(con, ids)

    target = out or paths.home / "sites" / release.name
    building = target.with_name(f".{target.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    # The sites the swap would leave beyond [site] keep go while the pages are made: deleting
    # a national site's 400,000 files takes as long as making them.
    chores = [] if out is not None else [
        functools.partial(_remove_site, old) for old in _beyond_keep(
            paths.home / "sites", target, settings.keep, reuse.previous)]
    downloads = _downloads(building, release, reuse, package)
    aside = _aside(building, downloads)
    shared = []
    if aside is not None:
        downloads = []  # the process aside holds them now, shared with the page makers
        shared = aside.shared.for_pages()
    try:
        counts = _write(building, release, rows, added, redirects, package, areas, communes,
                        outline, keys, _Provenance(sources, render, provenance_of),
                        settings, base, reuse, chores, downloads, shared)
        if aside is not None:
            aside.process.join()
            if aside.process.exitcode != 0:
                raise SiteError("compressing the downloads failed (exit code "
                                f"{aside.process.exitcode}): the site in use is kept")
    except BaseException:
        if aside is not None and aside.process.is_alive():
            aside.process.kill()
            aside.process.join()
        shutil.rmtree(building, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    building.rename(target)
    if out is None:
        manifest = _manifest_path(target)
        tmp = manifest.with_name(manifest.name + ".part")
        tmp.write_text(json.dumps(reuse.keys, separators=(",", ":")), encoding="utf-8")
        tmp.replace(manifest)
        _swap_site(paths.home, target, settings.keep)
    return {**counts, "reused": reuse.reused, "folder": str(out or paths.home / "site"),
            "release": release.name}


def site_is_current(home: Path) -> bool:
    """Whether `<home>/site` is the site of the current publication."""
    paths = WarehousePaths(home)
    release = current_release(paths)
    link = paths.home / "site"
    return release is not None and link.exists() and link.resolve().name == release.name


def _swap_site(home: Path, target: Path, keep: int) -> None:
    link = home / "site"
    tmp = home / ".site.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, home))
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)
    os.replace(tmp, link)
    for p in _beyond_keep(target.parent, target, keep):
        _remove_site(p)


def _beyond_keep(sites: Path, new: Path, keep: int, spare: Path | None = None) -> list[Path]:
    """The sites in `sites` that `keep` leaves out once `new` is in place, except `spare`
    (the current one, which a build links its unchanged files from)."""
    if not sites.is_dir():
        return []
    older = sorted(p for p in sites.iterdir() if p.is_dir() and p != new
                   and not p.name.startswith("."))
    return [p for p in older[: max(0, len(older) - keep)] if p != spare]


def _remove_site(site: Path) -> None:
    shutil.rmtree(site, ignore_errors=True)
    _manifest_path(site).unlink(missing_ok=True)


def _page_key(settings: SiteSettings, base: str) -> list:
    """What every structure page is made with besides its own data."""
    return [_code_key(), settings.title, base, settings.report_url]


def _structure_page(sid: str) -> str:
    return f"structures/{sid}.html"


def _structure_keys(rows: list[dict], provenance: dict[str, str], page_key: list,
                    areas: dict) -> dict[str, str]:
    """structure_id → the key of its page: what the page is made from (its row, the digest
    of its provenance, the area names, the code and settings), without making it. A
    structure's page depends on nothing else (`_structure_context`)."""
    common = digest([page_key, areas])
    blake2b, dumps = hashlib.blake2b, orjson.dumps
    # the rows' fields come in one order (the release's columns): no sorting needed
    return {r["structure_id"]: blake2b(
        dumps([common, r, provenance.get(r["structure_id"])], default=str),
        digest_size=16).hexdigest() for r in rows}


@dataclass
class _Provenance:
    """The value sources of the structure pages to render, and how to read more: the pages
    a page maker renders that were not read beforehand (a first build's, a page expected
    from the previous site whose file is gone)."""

    sources: dict  # structure_id → field → (source, day), for `fetched`
    fetched: set[str]  # the structures read
    read: Callable[[list[str]], dict]

    def has(self, sid: str) -> bool:
        return sid in self.fetched

    def add(self, ids: list[str]) -> None:
        self.sources.update(self.read(ids))
        self.fetched.update(ids)

    def forget(self, ids: list[str]) -> None:
        """Drop what `add` read for these pages, once rendered."""
        for sid in ids:
            self.sources.pop(sid, None)
        self.fetched.difference_update(ids)


def _per_reference(con, name: str, make) -> bytes:
    """`make()`'s bytes, made once per version of the communes reference and kept in its
    cache folder (`name` says what it is and its file suffix)."""
    version = "; ".join(v for _, v in ops.reference_versions(con))
    stem, suffix = name.rsplit(".", 1)
    cached = reference.cache_folder() / (
        f"{stem}-{hashlib.sha256(version.encode()).hexdigest()[:12]}.{suffix}")
    if cached.exists():
        return cached.read_bytes()
    data = make()
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(cached)
    return data


def _outline(con, areas: dict) -> bytes:
    """The départements' outlines as GeoJSON (dissolving 35,000 communes takes seconds)."""
    return _per_reference(con, "outline.geojson", lambda: outlines_geojson(
        departement_outlines(reference.commune_polygons(con)),
        {d: v["nom"] for d, v in areas["departements"].items()}).encode("utf-8"))


def _communes_json(con) -> bytes:
    """The communes for "près de…": [name, code INSEE, postcode, département, lat, lon]."""
    return _per_reference(con, "communes.json", lambda: _json_bytes(
        [[n, c, cp, d, round(lat, 5), round(lon, 5)]
         for n, c, cp, d, lat, lon in reference.commune_centres(con)]))


def _write(folder: Path, release: Path, rows, added, redirects, package, areas, communes,
           outline, keys: dict[str, str], provenance: _Provenance, settings, base,
           reuse: _Reuse, chores=(), downloads=(), shared=()) -> dict:
    env = _environment()
    created = package.get("created")
    common = {"title": settings.title, "created": created, "base": base,
              "tiles": settings.tiles, "attribution": settings.attribution,
              "areas": areas, "overseas": OVERSEAS}

    def page(relative: str, template: str, depth: int, **context) -> None:
        html = env.get_template(template).render(**{**common, **context}, root="../" * depth)
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")

    compress: list[tuple[str, Content, bool]] = []  # written with the pages, side by side

    def data_file(relative: str, data: bytes, lasting: bool = False) -> None:
        if not _shared(reuse, folder, relative, data):
            compress.append((relative, data, lasting))

    # the data the pages load
    index = index_rows(rows, added)
    data_file("data/index.json", _json_bytes({"created": created, "fields": INDEX_FIELDS,
                                              "rows": index}))
    regions, deps = by_area(rows)
    for code, members in regions.items():
        data_file(f"data/regions/{code}.json",
                  _json_bytes({r["structure_id"]: details(r) for r in members}))
    data_file("data/areas.json", _json_bytes(areas))
    data_file("data/communes.json", communes, lasting=True)
    data_file("data/outline.geojson", outline, lasting=True)
    data_file("data/config.json", _json_bytes({"tiles": settings.tiles,
                                               "attribution": settings.attribution,
                                               "mainland": MAINLAND}))
    compress.extend(downloads)  # (those a process compresses aside are not in it)

    # static assets
    shutil.copytree(WEBMAP / "static", folder / "static")
    shutil.copytree(Path(xstatic.pkg.leaflet.BASE_DIR), folder / "vendor" / "leaflet")
    shutil.copytree(Path(xstatic.pkg.leaflet_markercluster.BASE_DIR),
                    folder / "vendor" / "markercluster")

    # pages
    kinds_present = [k for k in KINDS if any(k in (r.get("types") or []) for r in rows)]
    region_list = sorted(((c, areas["regions"].get(c, c), len(m)) for c, m in regions.items()),
                         key=lambda x: x[1])
    page("index.html", "index.html", 0, kinds=kinds_present, regions=region_list)
    by_id = {r["structure_id"]: r for r in rows}
    for redirect in redirects:
        target = by_id.get(redirect["to"])
        page(f"structures/{redirect['from']}.html", "redirect.html", 1, old=redirect["from"],
             new=redirect["to"], target=target)
    # (what the area pages show is gathered where they are made, by the forked processes)
    areas_pages = [(f"regions/{code}.html", "région", code, members)
                   for code, members in regions.items()]
    areas_pages += [(f"departements/{code}.html", "département", code, members)
                    for code, members in deps.items()]
    # The structure and area pages are most of a build: checked (the key of each structure's
    # page), linked or rendered, and written by several processes when many. A page linked
    # from the previous site costs about a tenth of one rendered; a structure listed on an
    # area page about a fifth.
    pages = _Pages(folder, common, settings, rows, functools.partial(
        _structure_context, sources=provenance.sources, areas=areas, base=base),
        keys, provenance, _page_key(settings, base), reuse, areas_pages,
        functools.partial(_area_context, areas=areas), digest(areas))
    work = (len(rows) if reuse.previous is None else len(rows) // 10) + len(rows) // 5
    workers = _workers(settings.workers, work + sum(_size(d) for _, d, _ in compress) // 2000
                       + len(shared) * PARALLEL_FROM, len(rows))
    # the downloads the process aside has not begun, then the other files, then the pages
    rendered = _render_pages(pages, workers, [*chores, *shared,
                                              *_compress_jobs(folder, compress)])
    page("comprendre-iae.html", "comprendre.html", 0)
    page("rallye.html", "rallye.html", 0)
    page("404.html", "404.html", 0)
    _sitemap(folder, base, rows, regions, deps)
    return {"structures": len(rows), "on_map": len(index), "regions": len(regions),
            "departements": len(deps), "redirects": len(redirects),
            "rendered": rendered, "workers": workers}


# Below this many pages' worth of rendering, starting processes costs more than it saves.
PARALLEL_FROM = 2000


# Each page maker's own memory per structure (the pages of the rows it reads and what it
# makes), measured at 1M: 3.3 GB in two processes for 370,000 structures.
FORK_BYTES_PER_STRUCTURE = 4_500


def _workers(setting: int, work: int, structures: int = 0) -> int:
    if work < PARALLEL_FROM or not can_fork():
        return 1
    return affordable_workers(setting or default_workers(),
                              structures * FORK_BYTES_PER_STRUCTURE, "making the site's pages")


def _structure_context(r: dict, sources: dict, areas: dict, base: str) -> tuple[str, dict]:
    """A structure's page and what it shows. It depends on the row, its provenance and its
    area's names, never on the release date (the footer's "Données du" stays off it): an
    unchanged structure keeps its page from the previous site."""
    relative = f"structures/{r['structure_id']}.html"
    provenance = sources.get(r["structure_id"], {})
    # a namespace, not the row itself: Jinja reads `s.nom` as an attribute first, and a
    # dict's failed attribute lookup costs a fifth of a page's rendering (34 fields a page)
    return relative, dict(
        s=SimpleNamespace(**r), provenance=[(FIELD_LABELS[f], *provenance[f]) for f in FIELD_LABELS
                         if f in provenance],
        kind_sources=[(k, provenance.get(f"types:{k}", ("",))[0])
                      for k in (r.get("types") or [])],
        dep_name=areas["departements"].get(r.get("departement") or "", {}).get("nom"),
        region_name=areas["regions"].get(r.get("region") or ""),
        canonical=f"{base}/{relative}" if base else None)


def _area_context(level: str, code: str, members: list[dict], areas: dict) -> dict:
    """What a région's or a département's page shows."""
    if level == "région":
        name, region = areas["regions"].get(code, code), None
        children = sorted({r["departement"] for r in members if r.get("departement")})
    else:
        info = areas["departements"].get(code, {})
        name, region, children = info.get("nom", code), info.get("region"), []
    return dict(level=level, code=code, name=name, region=region,
                summary=area_summary(members),
                members=sorted((_Listed(r["structure_id"], r.get("nom"), r.get("types"),
                                        r.get("commune"), r.get("recrute"),
                                        r.get("postes_ouverts")) for r in members),
                               key=lambda m: m.nom or ""),
                children=children, points=_points(members))


class _Listed(NamedTuple):
    """A structure as an area page lists it: the fields area.html reads, as attributes
    (Jinja reads a dict's keys after a failed attribute lookup: a quarter slower on pages
    that list tens of thousands)."""

    structure_id: str
    nom: str | None
    types: list | None
    commune: str | None
    recrute: bool | None
    postes_ouverts: list | None


def _area_key(level: str, code: str, members: list[dict]) -> list:
    """What an area page is made of, read off its members without making it: the fields of
    theirs that `_area_context` and the page use, not the others (a new phone number
    changes a structure's page, not the lists it is on). The area names are keyed apart."""
    return [level, code, [(r["structure_id"], r.get("nom"), r.get("types"), r.get("commune"),
                           r.get("recrute"), r.get("postes_ouverts"), r.get("latitude"),
                           r.get("longitude"), r.get("departement")) for r in members]]


# The structure pages whose value sources one query reads. A page maker alone (one core, or
# too little memory to fork) read a national site's 370,000 at once, and DuckDB ran out of its
# memory limit (729 MiB); a share of two page makers' eight is 46,000.
PROVENANCE_BATCH = 50_000


@dataclass
class _Pages:
    """The structure pages (each linked from the previous site when its key is the same,
    else rendered) and the area pages of a build, and what making them needs."""

    folder: Path
    common: dict
    settings: SiteSettings
    rows: list  # the published structures, one page each
    context_of: Callable[[dict], tuple[str, dict]]
    keys: dict[str, str]  # structure_id → its page's key (_structure_keys)
    provenance: _Provenance  # the value sources of the pages to render
    page_key: list  # what every structure page is made with (code, title, addresses)
    reuse: _Reuse
    areas: list  # (relative path, level, code, member rows)
    area_context: Callable[[str, str, list], dict]
    areas_key: str  # the names of every area, which the area pages show

    def make(self, part: int = 0, parts: int = 1) -> tuple[dict[str, str], int, int, int]:
        """Make every `parts`-th page from `part` on: (the pages' keys, pages linked, pages
        rendered, structure pages made)."""
        reuse = _Reuse(self.reuse.previous, self.reuse.manifest)  # this part's bookkeeping
        for sub in {"structures"} | {os.path.dirname(a[0]) for a in self.areas}:
            os.makedirs(os.path.join(self.folder, sub), exist_ok=True)
        mine = self.rows[part::parts]
        todo = [r for r in mine if not reuse.take(self.folder, _structure_page(
            r["structure_id"]), self.keys[r["structure_id"]])]
        rendered = 0
        for start in range(0, len(todo), PROVENANCE_BATCH):
            batch = todo[start:start + PROVENANCE_BATCH]
            # read here, in the page maker (forked or not), for this batch's pages only
            unread = [r["structure_id"] for r in batch
                      if not self.provenance.has(r["structure_id"])]
            if unread:
                self.provenance.add(unread)
            for r in batch:
                relative, context = self.context_of(r)
                self._write(relative, "structure.html", {
                    **context, "created": None,
                    "json_ld": json_ld(r, context["canonical"] or relative),
                    "report": _report(self.settings, r),
                    "phone": phone_display(r.get("telephone"))})
                rendered += 1
            self.provenance.forget(unread)
        for relative, level, code, members in self.areas[part::parts]:
            key = digest([self.page_key, self.areas_key, _area_key(level, code, members)])
            if reuse.take(self.folder, relative, key):
                continue
            # no release date on them either: an area whose list is unchanged keeps its page
            context = self.area_context(level, code, members)
            self._write(relative, "area.html", {**context, "created": None})
            rendered += 1
        return reuse.keys, reuse.reused, rendered, len(mine)

    def _write(self, relative: str, template: str, context: dict) -> None:
        html = _environment().get_template(template).render(
            {**self.common, **context, "root": "../"})
        with open(os.path.join(self.folder, relative), "w", encoding="utf-8") as f:
            f.write(html)


DOWNLOADS = ("siae.geojson", "siae.csv", "siae.parquet", "siae.gpkg", "datapackage.json",
             "redirects.json", "changes.json", "datainclusion/structures.json",
             "datainclusion/structures.csv")


def _downloads(folder: Path, release: Path, reuse: _Reuse, package: dict
               ) -> list[tuple[str, Content, bool]]:
    """The publication itself in `donnees/`, for download and for map sites: the binary
    files linked from the release, the text files linked from the previous site when the
    same, the others returned (as the release's files, not read here) to be written with
    their compressed copies. A file the release's datapackage gives a hash of is known by
    it: hashing a national release's downloads again took a second and a half."""
    hashes = {r.get("path"): r.get("hash") for r in package.get("resources") or []
              if isinstance(r, dict) and isinstance(r.get("hash"), str)}
    pending = []
    for name in DOWNLOADS:
        if not (release / name).exists():
            continue
        if not name.endswith((".geojson", ".json", ".csv")):
            _link_or_copy(release / name, folder / "donnees" / name)
            continue
        relative = f"donnees/{name}"
        if name in hashes and reuse.take(folder, relative, hashes[name], _COPIES):
            continue
        if name in hashes or not _shared(reuse, folder, relative,
                                         (release / name).read_bytes()):
            pending.append((relative, release / name, False))
    return pending


# A data file and its compressed copies, linked together from the previous site.
_COPIES = ("", ".gz", ".br")


def _shared(reuse: _Reuse, folder: Path, relative: str, data: bytes) -> bool:
    """Whether a data file (and its compressed copies) is linked from the previous site,
    being the same: compressing the large ones takes time."""
    key = hashlib.blake2b(data, digest_size=16).hexdigest()
    return reuse.take(folder, relative, key, _COPIES)


class _Shared:
    """Jobs that the process aside and the page makers share: each is run once, by whichever
    process takes it first. The process aside starts them while this one prepares the
    pages; the page makers take what is left before their pages."""

    def __init__(self, jobs: list[Callable[[], None]]):
        self.jobs = jobs
        self._taken = multiprocessing.get_context("fork").Array("b", len(jobs))

    def _take(self, index: int) -> bool:
        with self._taken.get_lock():
            if self._taken[index]:
                return False
            self._taken[index] = 1
            return True

    def run(self, index: int) -> None:
        if self._take(index):
            self.jobs[index]()

    def for_pages(self) -> list[Callable[[], None]]:
        """The same jobs, for the page makers' queue."""
        return [functools.partial(self.run, i) for i in range(len(self.jobs))]


def _compress_all(shared: _Shared) -> None:
    for index in range(len(shared.jobs)):
        shared.run(index)


@dataclass
class _Aside:
    process: multiprocessing.process.BaseProcess
    shared: _Shared


def _aside(folder: Path, files: list[tuple[str, Content, bool]]) -> _Aside | None:
    """A forked process that writes `files` with their compressed copies while this one
    makes the rest of the site (the downloads are most of the compressing, and the first
    part of a build is one process's work); the page makers share what it has not begun
    when they start. None when there is nothing to write or no fork."""
    if not files or not can_fork() or sum(_size(d) for _, d, _ in files) < ASIDE_FROM:
        return None
    shared = _Shared(_compress_jobs(folder, files))
    process = multiprocessing.get_context("fork").Process(
        target=_compress_all, args=(shared,), daemon=True)
    process.start()
    return _Aside(process, shared)


# Below this many bytes to compress, starting a process costs more than it saves.
ASIDE_FROM = 4 << 20


def _render_pages(pages: _Pages, workers: int, files: list[Callable[[], None]]) -> int:
    """Make the pages, after the jobs in `files` (data files to compress, old sites to
    delete: seconds each), in `workers` forked processes when more than one: Jinja is pure
    Python (0.6 ms for a structure's page), and a national site has 400,000 pages. Returns
    how many pages were rendered; the others were linked."""
    # more parts than processes: the one that compressed a large file takes fewer of them
    parts = 1 if workers <= 1 else workers * 4
    jobs = [*files, *(functools.partial(pages.make, part, parts) for part in range(parts))]
    made = run_forked(jobs, workers)[len(files):]
    for keys, reused, _, _ in made:
        pages.reuse.keys.update(keys)
        pages.reuse.reused += reused
    structures = sum(n for _, _, _, n in made)
    if structures != len(pages.rows):
        raise SiteError(f"{structures} structure pages made out of {len(pages.rows)}")
    return sum(rendered for _, _, rendered, _ in made)


def _link_or_copy(source: Path, target: Path) -> None:
    """A release's file in the site: the release never changes, so a hard link will do."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _points(members) -> str:
    """The markers of an area page, as JSON safe inside a <script> element."""
    return script_json([[r["structure_id"], r.get("nom"), list(r.get("types") or []),
                         r["latitude"], r["longitude"]]
                        for r in members if r.get("latitude") is not None])


def _sitemap(folder: Path, base: str, rows, regions, deps) -> None:
    if not base:
        return
    urls = ["", "comprendre-iae.html"] + [f"regions/{c}.html" for c in sorted(regions)]
    urls += [f"departements/{c}.html" for c in sorted(deps)]
    urls += [f"structures/{r['structure_id']}.html" for r in rows]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    lines += [f"<url><loc>{base}/{u}</loc></url>" for u in urls]
    lines.append("</urlset>")
    (folder / "sitemap.xml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "robots.txt").write_text(f"Sitemap: {base}/sitemap.xml\n", encoding="utf-8")

