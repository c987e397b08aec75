"""`siae map`: serve the reference map page and the current publication on localhost.

Static files only: the page (webmap/), Leaflet and MarkerCluster from their PyPI packages
(never a CDN), the publication folder, and small JSON documents: the tile layer setting, the
names of régions and départements, and the départements' outlines (the background drawn when
there are no tiles), the last two from the warehouse's communes reference.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster

from transforms.outlines import departement_outlines, outlines_geojson
from warehouse import reference
from warehouse.db import connect
from warehouse.paths import WarehousePaths

WEBMAP = Path(__file__).resolve().parent.parent / "webmap"
log = logging.getLogger("siae.map")


def area_names(paths: WarehousePaths) -> dict:
    """Names of régions and départements, or empty tables when the warehouse is busy/absent."""
    try:
        with connect(paths.database, read_only=True) as con:
            return reference.area_names(con)
    except Exception as exc:  # a missing file, or a sync holding the write lock
        log.warning("région and département names unavailable: %s",
                    str(exc).splitlines()[0])
        return {"regions": {}, "departements": {}}


def outline_document(paths: WarehousePaths) -> bytes:
    """The départements' outlines as GeoJSON (an empty collection when the warehouse is
    busy or absent): about 2 s for the whole of France, so built on first request."""
    try:
        with connect(paths.database, read_only=True) as con:
            rows = reference.commune_polygons(con)
            names = reference.departement_names(con)
    except Exception as exc:  # a missing file, or a sync holding the write lock
        log.warning("département outlines unavailable: %s", str(exc).splitlines()[0])
        return b'{"type":"FeatureCollection","features":[]}'
    return outlines_geojson(departement_outlines(rows), names).encode()


class Lazy:
    """A document computed once, on first request, by whichever thread asks first."""

    def __init__(self, build):
        self.build, self.value, self.lock = build, None, threading.Lock()

    def get(self) -> bytes:
        with self.lock:
            if self.value is None:
                self.value = self.build()
            return self.value


class MapHandler(SimpleHTTPRequestHandler):
    """Maps URL prefixes to folders; refuses anything outside them."""

    def __init__(self, *args, roots: dict[str, Path], documents: dict[str, bytes | Lazy],
                 **kw):
        self.roots = roots
        self.documents = documents
        super().__init__(*args, **kw)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.debug(format, *args)

    def do_GET(self):  # noqa: N802 (the base class's name)
        path = unquote(urlsplit(self.path).path)
        if path in self.documents:
            body = self.documents[path]
            if isinstance(body, Lazy):
                body = body.get()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            # the page may be closed before the document arrives
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)
            return
        super().do_GET()

    def translate_path(self, path: str) -> str:
        path = unquote(urlsplit(path).path)
        if "\x00" in path:
            return str(Path("/nonexistent"))  # a NUL is no file name: 404, not a traceback
        if path in ("", "/"):
            path = "/index.html"
        for prefix, root in self.roots.items():
            if path.startswith(prefix):
                target = (root / path[len(prefix):].lstrip("/")).resolve()
                if target.is_relative_to(root.resolve()):
                    return str(target)
        return str(Path("/nonexistent"))

    def end_headers(self):
        # Data change with each publication: no stale GeoJSON in the browser.
        if self.path.startswith("/data/"):
            self.send_header("Cache-Control", "no-cache")
        super().end_headers()


def make_server(home: Path, host: str = "127.0.0.1", port: int = 8000,
                tiles: str | None = None, attribution: str = "") -> ThreadingHTTPServer:
    """A server for the page and the publication; port 0 picks a free port."""
    paths = WarehousePaths(home)
    roots = {
        "/vendor/leaflet/": Path(xstatic.pkg.leaflet.BASE_DIR),
        "/vendor/markercluster/": Path(xstatic.pkg.leaflet_markercluster.BASE_DIR),
        "/data/": paths.publish,
        "/": WEBMAP,
    }
    documents = {
        "/config.json": json.dumps({"tiles": tiles, "attribution": attribution}).encode(),
        "/areas.json": json.dumps(area_names(paths), ensure_ascii=False).encode(),
        "/outline.geojson": Lazy(partial(outline_document, paths)),
    }
    handler = partial(MapHandler, roots=roots, documents=documents)
    return ThreadingHTTPServer((host, port), handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve until `server.shutdown()` (for tests and tools)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
