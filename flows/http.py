"""HTTP for every network user of the pipeline (connectors, file downloads, the geocoder).

One session factory (retries with backoff and jitter on 429/5xx, `Retry-After` honoured, an
explicit User-Agent), one rate limiter, one error type whose messages name the source and
never a secret, and the payload landed from a fetch (or read from a local file, whole).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger("siae.fetch")


class FetchError(RuntimeError):
    """A source could not be fetched; the message names the source and never a secret."""


def read_whole(source: str, path: Path) -> bytes:
    """A local file's bytes, refused when it changed while it was read (its size or time of
    modification): an export still being written would land cut off."""
    before = path.stat()
    data = path.read_bytes()
    after = path.stat()
    if not len(data) == before.st_size == after.st_size \
            or before.st_mtime_ns != after.st_mtime_ns:
        raise FetchError(f"source '{source}': {path} changed while it was read (still being "
                         f"written?): not landed; the next run reads it again")
    return data


@dataclass(frozen=True)
class Payload:
    """What a fetch returned, landed untouched under raw/."""

    data: bytes
    location: str  # path or URL, without credentials
    name: str  # file name, for guessing the format

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class RateLimiter:
    """At most `per_second` calls per second, spaced evenly (thread-safe)."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            time.sleep(delay)


def http_session(user_agent: str, retries: int) -> requests.Session:
    """A session that retries transient failures with backoff, honouring Retry-After."""
    retry = Retry(
        total=retries,
        backoff_factor=1.0,
        backoff_jitter=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=("GET", "HEAD", "POST"),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers["User-Agent"] = user_agent
    return session


def describe(exc: requests.RequestException) -> str:
    """What went wrong, in a few words: the error behind urllib3's retries when there is one
    (a timeout, a refused connection), never a URL's credentials."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    if isinstance(reason, Exception):
        text = str(reason)
        if "timed out" in text.lower() or "Timeout" in type(reason).__name__:
            return f"Timeout ({type(reason).__name__})"
        if "refused" in text.lower():
            return "ConnectionError (connection refused)"
        return f"{type(exc).__name__} ({type(reason).__name__})"
    return type(exc).__name__


def token_from_env(source: str, env_name: str | None) -> str | None:
    """The API token held by the environment variable `env_name` (None when no variable is
    configured); a configured but unset variable fails the source."""
    if not env_name:
        return None
    token = os.environ.get(env_name)
    if not token:
        raise FetchError(f"source '{source}': environment variable {env_name} is not set (it "
                         "holds the API token)")
    return token


def get_json(session: requests.Session, source: str, url: str, *, timeout: float,
             limiter: RateLimiter | None = None, headers: dict | None = None) -> object:
    """GET a JSON document; anything else (an error status, an HTML page) fails the source."""
    if limiter:
        limiter.wait()
    try:
        response = session.get(url, timeout=timeout, headers=headers or {})
    except requests.RequestException as exc:
        raise FetchError(f"source '{source}': GET {url} failed: {describe(exc)}") from exc
    if response.status_code != 200:
        raise FetchError(f"source '{source}': GET {url} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        kind = response.headers.get("Content-Type", "?")
        raise FetchError(f"source '{source}': GET {url} did not return JSON "
                         f"(Content-Type {kind}): {response.text[:80]!r}") from exc


def download(session: requests.Session, source: str, url: str, *, timeout: float,
             headers: dict | None = None, max_bytes: int | None = None,
             what: str = "data") -> bytes:
    """Stream a file, logging progress; refuse an HTML page, a file shorter than its
    Content-Length (truncated) or larger than `max_bytes`."""
    try:
        with session.get(url, timeout=timeout, stream=True, headers=headers or {}) as response:
            if response.status_code != 200:
                raise FetchError(f"source '{source}': GET {url} answered HTTP "
                                 f"{response.status_code}")
            if "text/html" in response.headers.get("Content-Type", ""):
                raise FetchError(f"source '{source}': GET {url} returned an HTML page instead "
                                 f"of {what}")
            expected = int(response.headers.get("Content-Length") or 0)
            chunks, got, logged = [], 0, 0
            for chunk in response.iter_content(1 << 20):
                chunks.append(chunk)
                got += len(chunk)
                if max_bytes is not None and got > max_bytes:
                    raise FetchError(f"source '{source}': {url} is larger than "
                                     f"{max_bytes >> 20} MB: refused")
                if got - logged >= 10 << 20:
                    log.info("%s: %d MB downloaded", source, got >> 20)
                    logged = got
    except requests.RequestException as exc:
        raise FetchError(f"source '{source}': GET {url} failed: {describe(exc)}") from exc
    if expected and got < expected:
        raise FetchError(f"source '{source}': {url} truncated ({got} of {expected} bytes)")
    return b"".join(chunks)
