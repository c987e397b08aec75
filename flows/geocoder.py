"""Geocoding structures with the BAN (Géoplateforme) batch CSV endpoint, through a cache.

`POST {base_url}/search/csv/` with the CSV as `data`, the query columns as repeated `columns`
and the commune filter column as `citycode`. A self-hosted addok answers the same way. Every
answer is cached in `core.geocodes`: a re-run sends nothing for addresses already answered;
failed or low-score answers are asked again after `retry_failed_after_days`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import requests

from flows.http import RateLimiter, describe, http_session
from transforms.geocoding import (
    FILTER_COLUMN,
    QUERY_COLUMNS,
    Query,
    QueryMemo,
    Result,
    accept,
    make_query,
    parse_response,
    request_csv,
)
from transforms.kinds import fold
from transforms.spec import GeocoderSettings
from warehouse import geocodes

log = logging.getLogger("siae.geocode")


class GeocodeError(RuntimeError):
    """The geocoder could not answer a batch (after retries)."""


class BanClient:
    """The Géoplateforme (or addok) CSV endpoint, rate-limited and retried."""

    def __init__(self, settings: GeocoderSettings, user_agent: str):
        self.url = f"{settings.base_url}/search/csv/"
        self.timeout = settings.timeout
        self.user_agent, self.retries = user_agent, settings.retries
        self.limiter = RateLimiter(settings.rate_per_second)
        self.requests = 0
        # one session per sending thread: requests does not promise that a session is safe
        # to share between threads
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """This thread's session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = http_session(self.user_agent, self.retries)
            with self._lock:
                self._sessions.append(session)
        return session

    def search_csv(self, queries: list[Query]) -> dict[str, Result]:
        self.limiter.wait()
        with self._lock:
            self.requests += 1
        files = {"data": ("adresses.csv", request_csv(queries), "text/csv")}
        fields = [("columns", c) for c in QUERY_COLUMNS] + [("citycode", FILTER_COLUMN)]
        try:
            response = self.session.post(self.url, files=files, data=fields,
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            raise GeocodeError(f"geocoder: POST {self.url} failed: {describe(exc)}") from exc
        if response.status_code != 200:
            raise GeocodeError(f"geocoder: POST {self.url} answered HTTP "
                               f"{response.status_code}: {response.text[:120]!r}")
        try:
            return parse_response(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise GeocodeError(f"geocoder: {self.url}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


class ReplayClient:
    """Answers from a saved BAN answer file (same columns as the endpoint's answer), for
    offline runs such as the demo. Addresses absent from the file are `not-found`."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise GeocodeError(f"geocoder replay file not found: {path}")
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        self.answers = {self._key(r): r for r in rows}
        self.requests = 0

    @staticmethod
    def _key(row) -> tuple[str, ...]:
        return tuple(fold(row.get(c) or "") for c in (*QUERY_COLUMNS, FILTER_COLUMN))

    def search_csv(self, queries: list[Query]) -> dict[str, Result]:
        self.requests += 1
        out = io.StringIO()
        columns = ["key", "latitude", "longitude", "result_score", "result_type",
                   "result_label", "result_citycode", "result_status"]
        writer = csv.DictWriter(out, columns, extrasaction="ignore")
        writer.writeheader()
        for q in queries:
            found = self.answers.get(self._key(q._asdict()))
            writer.writerow({**(found or {"result_status": "not-found"}), "key": q.key})
        return parse_response(out.getvalue().encode())

    def close(self) -> None:
        pass


@dataclass
class GeocodeStats:
    addresses: int = 0  # structures with an address to geocode
    cache_hits: int = 0
    sent: int = 0
    requests: int = 0
    accepted: int = 0
    pruned: int = 0
    error: str | None = None
    refused: dict[str, int] = field(default_factory=dict)


# Answers are written to the cache this many at a time (ten batches of the default size).
STORE_EVERY = 50_000
# The structures whose queries are made, and looked up in the cache, at a time: the first
# batch goes out once the first QUERY_CHUNK are made, and the geocoder answers it while the
# next are. Making a national run's 370,000 queries all before sending took 7.7 s, with the
# geocoder idle. Each chunk is twice the one before, up to MAX_QUERY_CHUNK: a lookup reads
# the whole cache table, and a re-run's 75 lookups of 5,000 took 1.5 s more than one.
QUERY_CHUNK = 5_000
MAX_QUERY_CHUNK = 100_000


@dataclass
class _Pending:
    """The queries made so far, and the batches still to send, a chunk of structures at a
    time (`batches`): what `geocode_structures` sends, and what it accepts at the end."""

    con: duckdb.DuckDBPyConnection
    settings: GeocoderSettings
    query: Callable[[dict], Query | None]
    resend_all: bool
    due: dt.datetime
    by_structure: dict[str, Query] = field(default_factory=dict)
    queries: dict[str, Query] = field(default_factory=dict)
    results: dict[str, Result] = field(default_factory=dict)
    to_send: int = 0  # addresses put in a batch
    looked_at: int = 0  # structures whose query is made (and batched when due)

    def batches(self, structures: Iterable[dict]) -> Iterator[tuple[list[Query], int]]:
        """Each batch to send, with how many structures were looked at when it filled."""
        size, waiting = self.settings.batch_size, []
        rows, chunk_size = iter(structures), QUERY_CHUNK
        while chunk := list(itertools.islice(rows, chunk_size)):
            chunk_size = min(2 * chunk_size, max(MAX_QUERY_CHUNK, QUERY_CHUNK))
            waiting += self._due(chunk)
            self.looked_at += len(chunk)
            while len(waiting) >= size:
                yield waiting[:size], self.looked_at
                waiting = waiting[size:]
        if waiting:
            yield waiting, self.looked_at

    def _due(self, chunk: list[dict]) -> list[Query]:
        """The chunk's new addresses to send (not cached, or failed long enough ago), by key:
        the same chunk sends the same batches whatever the cache's order."""
        made = {s["structure_id"]: q for s in chunk if (q := self.query(s))}
        self.by_structure.update(made)
        queries = self.queries
        fresh = {q.key: q for q in made.values() if q.key not in queries}
        queries.update(fresh)
        cached = geocodes.cached(self.con, list(fresh))
        self.results.update((k, r) for k, (r, _) in cached.items())
        due = [fresh[k] for k in sorted(k for k in fresh if self.resend_all or (
            k not in cached) or (cached[k][1] < self.due and not accept(
                cached[k][0], self.settings.min_score)[0]))]
        self.to_send += len(due)
        return due


def geocode_structures(
    con: duckdb.DuckDBPyConnection,
    structures: Iterable[dict],
    settings: GeocoderSettings,
    client,
    *,
    resend_all: bool = False,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    memo: QueryMemo | None = None,
    total: int | None = None,
) -> tuple[dict[str, tuple], GeocodeStats]:
    """Accepted answers by structure_id (lon, lat, type, score, citycode), sending only what
    the cache does not hold (or every address with `resend_all`). A failing batch stops the
    sending; the cached answers are still used. `memo`: the queries of the last run's
    addresses (the same queries, made faster). Queries are made a chunk of structures at a
    time while the geocoder answers the batches already sent. `progress(done, total)`: the
    structures whose answers are in (`total`: how many structures, when `structures` has no
    length)."""
    now = now or dt.datetime.now()
    if total is None and hasattr(structures, "__len__"):
        total = len(structures)
    stats = GeocodeStats()
    pending = _Pending(con, settings, make_query if memo is None else memo.query, resend_all,
                       now - dt.timedelta(days=settings.retry_failed_after_days))
    batches = pending.batches(structures)
    # stored here, in the order sent: one connection, and the same cache whatever the order
    # the geocoder answered in; STORE_EVERY addresses at a time (74 INSERTs of a national
    # run's batches took twice the time of 8), and whatever is left when the sending ends
    unstored: dict[str, Query] = {}
    answered: dict[str, Result] = {}
    looked_at: deque[int] = deque()

    def sending() -> Iterator[list[Query]]:
        for batch, seen in batches:
            looked_at.append(seen)
            yield batch

    try:
        for batch, answers in _answers(client, sending(), settings.batches_in_flight):
            done = looked_at.popleft()
            if isinstance(answers, GeocodeError):
                if stats.error is None:
                    stats.error = str(answers)
                    log.warning("%s; no more batches are sent", answers)
                continue
            unstored.update((q.key, q) for q in batch)
            answered.update(answers)
            pending.results.update(answers)
            if len(unstored) >= STORE_EVERY:
                geocodes.store(con, unstored, answered, now)
                unstored, answered = {}, {}
            stats.sent += len(batch)
            if progress:
                progress(done, total or pending.looked_at)
    finally:
        geocodes.store(con, unstored, answered, now)
    for _ in batches:  # after a failure: the other structures' queries, from the cache only
        pass
    if progress:
        progress(pending.looked_at, pending.looked_at)
    if stats.error is not None:
        log.warning("geocoder: %d addresses left unsent", pending.to_send - stats.sent)
    stats.addresses = len(pending.by_structure)
    stats.cache_hits = len(pending.queries) - pending.to_send
    stats.requests = client.requests
    stats.pruned = geocodes.prune(con, pending.queries)
    accepted = {}
    results = pending.results
    for sid, q in pending.by_structure.items():
        ok, why = accept(results.get(q.key), settings.min_score)
        if ok:
            r = results[q.key]
            accepted[sid] = (r.longitude, r.latitude, r.type, r.score, r.citycode)
        else:
            reason = why.split(" ")[0]
            stats.refused[reason] = stats.refused.get(reason, 0) + 1
    stats.accepted = len(accepted)
    return accepted, stats


def _answers(client, batches: Iterable[list[Query]], in_flight: int
             ) -> Iterator[tuple[list[Query], dict[str, Result] | GeocodeError]]:
    """Each batch with the geocoder's answers (or its error), in order, with up to
    `in_flight` batches sent at once: the BAN takes seconds to answer a file of 5,000
    addresses, and this process reads and stores one answer (and makes the next batches)
    while it works on the next. After an error no batch is taken from `batches`; those
    already sent are still answered."""
    waiting = iter(batches)
    if in_flight <= 1:
        for batch in waiting:
            try:
                yield batch, client.search_csv(batch)
            except GeocodeError as exc:
                yield batch, exc
                return
        return
    with ThreadPoolExecutor(in_flight, thread_name_prefix="geocoder") as pool:
        sent = deque((b, pool.submit(client.search_csv, b))
                     for b in itertools.islice(waiting, in_flight))
        failed = False
        try:
            while sent:
                batch, future = sent.popleft()
                try:
                    answer = future.result()
                except GeocodeError as exc:
                    answer, failed = exc, True
                following = None if failed else next(waiting, None)
                if following is not None:
                    sent.append((following, pool.submit(client.search_csv, following)))
                yield batch, answer
        finally:  # the caller gave up: nothing more is sent
            for _, future in sent:
                future.cancel()


def make_client(settings: GeocoderSettings, user_agent: str):
    """The replay file when one is set (offline), else the BAN endpoint."""
    return ReplayClient(settings.replay) if settings.replay else BanClient(settings, user_agent)


def terminal_progress(done: int, total: int) -> None:
    """A one-line progress bar on stderr."""
    width = 30
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\rgeocoding [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
