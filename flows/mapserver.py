"""`siae map`: serve the built mini-site (`<home>/site`) on localhost.

Static files only, as any host would serve them: the pre-compressed copy of a file (`.br`,
then `.gz`) when the browser accepts it, `Content-Type` by extension, short caching for the
pages and the data. Nothing outside the site folder is reachable.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger("siae.map")
mimetypes.add_type("application/geo+json", ".geojson")
mimetypes.add_type("application/json", ".json")
mimetypes.add_type("application/geopackage+sqlite3", ".gpkg")


class SiteHandler(SimpleHTTPRequestHandler):
    """Serves one folder; picks a pre-compressed copy when the browser accepts it."""

    def __init__(self, *args, folder: Path, **kw):
        self.folder = folder.resolve()
        super().__init__(*args, directory=str(self.folder), **kw)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.debug(format, *args)

    def _target(self) -> Path | None:
        path = unquote(urlsplit(self.path).path)
        if "\x00" in path:
            return None  # a NUL is no file name: 404, not a traceback
        if path.endswith("/"):
            path += "index.html"
        target = (self.folder / path.lstrip("/")).resolve()
        return target if target.is_relative_to(self.folder) and target.is_file() else None

    def do_GET(self):  # noqa: N802 (the base class's name)
        self._serve(head=False)

    def do_HEAD(self):  # noqa: N802
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        target = self._target()
        if target is None:
            missing = self.folder / "404.html"
            self._send(missing if missing.exists() else None, 404, head)
            return
        self._send(target, 200, head)

    def _send(self, target: Path | None, status: int, head: bool) -> None:
        body, encoding = b"Not Found", None
        ctype = "text/plain; charset=utf-8"
        if target is not None:
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith(("json", "javascript")):
                ctype += "; charset=utf-8"
            accepted = self.headers.get("Accept-Encoding", "")
            for enc, suffix in (("br", ".br"), ("gzip", ".gz")):
                packed = target.with_name(target.name + suffix)
                if enc in accepted and packed.exists():
                    target, encoding = packed, enc
                    break
            body = target.read_bytes()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if encoding:
            self.send_header("Content-Encoding", encoding)
            self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if not head:
            # the page may be closed before the document arrives
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for the site folder; port 0 picks a free port."""
    return ThreadingHTTPServer((host, port), partial(SiteHandler, folder=folder))


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve until `server.shutdown()` (for tests and tools)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
