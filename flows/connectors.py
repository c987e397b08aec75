"""Connectors for the public SIAE sources: paginated, rate-limited, retried HTTP fetches.

Each returns the payload to land: the API's response bodies gathered in one JSON document
(`{"pages": [{"url", "body"}]}`), or the downloaded file. Contracts: ../shared/SOURCES.md.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import urlencode

import requests

from flows.http import (
    FetchError,
    Payload,
    RateLimiter,
    download,
    get_json,
    http_session,
    read_whole,
    token_from_env,
)
from transforms.spec import COLLECTIVITES, DEPARTEMENTS, SourceSpec

log = logging.getLogger("siae.fetch")

DEFAULT_BASE_URLS = {
    "datainclusion": "https://www.data.gouv.fr",
    "recherche_entreprises": "https://recherche-entreprises.api.gouv.fr",
    "emplois": "https://emplois.inclusion.beta.gouv.fr",
}
DATAINCLUSION_DATASET = "6233723c2c1e4a54af2f6b2d"
# Stay a little under the published limits (7 requests/s; 12 requests/min anonymously).
RECHERCHE_RATE_PER_SECOND = 6.0
EMPLOIS_RATE_PER_MINUTE = 11.0
RECHERCHE_PER_PAGE = 25
RECHERCHE_MAX_RESULTS = 10_000  # page × per_page cap of the API
# Queried by default: every département and the collectivités d'outre-mer that have SIAE.
AREAS = DEPARTEMENTS + COLLECTIVITES


def base_url(spec: SourceSpec) -> str:
    return (spec.base_url or DEFAULT_BASE_URLS[spec.kind]).rstrip("/")


def _get(session: requests.Session, spec: SourceSpec, url: str, limiter: RateLimiter,
         headers: dict | None = None) -> object:
    return get_json(session, spec.name, url, timeout=spec.timeout, limiter=limiter,
                    headers=headers)


def _pages_payload(pages: list[dict], name: str, location: str) -> Payload:
    text = json.dumps({"pages": pages}, ensure_ascii=False, sort_keys=True)
    return Payload(text.encode("utf-8"), location, name)


# --- data·inclusion ----------------------------------------------------------------------

_RESOURCE = re.compile(r"structures-inclusion-(\d{4}-\d{2}-\d{2})")


def pick_resource(resources: list[dict]) -> dict | None:
    """The newest `structures-inclusion-YYYY-MM-DD` resource, parquet preferred to csv."""
    best = None
    for r in resources:
        m = _RESOURCE.search(f"{r.get('title', '')} {r.get('url', '')}")
        fmt = (r.get("format") or "").lower()
        if not m or fmt not in ("parquet", "csv"):
            continue
        key = (m.group(1), fmt == "parquet")
        if best is None or key > best[0]:
            best = (key, r)
    return best[1] if best else None


def fetch_datainclusion(spec: SourceSpec, user_agent: str) -> list[Payload]:
    base = base_url(spec)
    dataset = spec.dataset or DATAINCLUSION_DATASET
    session = http_session(user_agent, spec.retries)
    limiter = RateLimiter(10)
    try:
        meta = _get(session, spec, f"{base}/api/1/datasets/{dataset}/", limiter)
        resources = meta.get("resources") if isinstance(meta, dict) else None
        if not isinstance(resources, list):
            raise FetchError(f"source '{spec.name}': dataset {dataset} has no 'resources' list")
        resource = pick_resource(resources)
        if resource is None:
            raise FetchError(f"source '{spec.name}': no structures-inclusion-YYYY-MM-DD "
                             f"resource in parquet or csv in dataset {dataset}")
        url = resource["url"]
        log.info("%s: downloading %s", spec.name, url)
        data = download(session, spec.name, url, timeout=spec.timeout)
    finally:
        session.close()
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    if not name.endswith((".parquet", ".csv")):
        name = f"{resource.get('title', 'structures')}.{resource['format'].lower()}"
    return [Payload(data, url, name)]


# --- API Recherche d'entreprises -------------------------------------------------------------

def fetch_recherche_entreprises(spec: SourceSpec, user_agent: str) -> list[Payload]:
    """Every SIAE company, one query per département, all pages, under the rate limit."""
    base = base_url(spec)
    limiter = RateLimiter(spec.rate_per_second or RECHERCHE_RATE_PER_SECOND)
    session = http_session(user_agent, spec.retries)
    pages: list[dict] = []
    try:
        for dep in spec.departements or AREAS:
            page, total_pages = 1, 1
            while page <= total_pages:
                params = {"est_siae": "true", "departement": dep, "page": page,
                          "per_page": RECHERCHE_PER_PAGE, "limite_matching_etablissements": 100}
                url = f"{base}/search?{urlencode(params)}"
                body = _get(session, spec, url, limiter)
                if not isinstance(body, dict) or "results" not in body:
                    raise FetchError(f"source '{spec.name}': {url}: no 'results' in the answer")
                total_pages = int(body.get("total_pages") or 1)
                if int(body.get("total_results") or 0) > RECHERCHE_MAX_RESULTS:
                    log.warning("%s: département %s has more than %d results; the API "
                                "returns only the first %d", spec.name, dep,
                                RECHERCHE_MAX_RESULTS, RECHERCHE_MAX_RESULTS)
                    total_pages = min(total_pages, RECHERCHE_MAX_RESULTS // RECHERCHE_PER_PAGE)
                pages.append({"url": url, "body": body})
                log.info("%s: département %s page %d/%d", spec.name, dep, page, total_pages)
                page += 1
    finally:
        session.close()
    return [_pages_payload(pages, "recherche_entreprises.json", f"{base}/search")]


# --- Les emplois de l'inclusion ---------------------------------------------------------------

def fetch_emplois(spec: SourceSpec, user_agent: str) -> list[Payload]:
    """The public `/api/v1/siaes/` per département, or with a token the `/data-inclusion/`
    endpoint (active structures, with coordinates); `next` links are followed."""
    base = base_url(spec)
    limiter = RateLimiter((spec.rate_per_minute or EMPLOIS_RATE_PER_MINUTE) / 60.0)
    token = token_from_env(spec.name, spec.token_env)
    headers = {"Authorization": f"Token {token}"} if token else {}
    page_size = spec.page_size or 100
    if token:
        starts = [("all", f"{base}/api/v1/data-inclusion/?{urlencode({'type': 'siae'})}")]
    else:
        starts = [(d, f"{base}/api/v1/siaes/?"
                      f"{urlencode({'departement': d, 'page_size': page_size})}")
                  for d in spec.departements or AREAS]
    session = http_session(user_agent, spec.retries)
    pages: list[dict] = []
    try:
        for label, url in starts:
            n = 0
            while url:
                body = _get(session, spec, url, limiter, headers)
                if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                    raise FetchError(f"source '{spec.name}': {url}: no 'results' list")
                pages.append({"url": url, "body": body})
                n += 1
                log.info("%s: %s page %d (%s structures in all)", spec.name, label, n,
                         body.get("count", "?"))
                url = body.get("next")
    finally:
        session.close()
    endpoint = "/api/v1/data-inclusion/" if token else "/api/v1/siaes/"
    return [_pages_payload(pages, "emplois.json", base + endpoint)]


# --- ASP fluxIAE ------------------------------------------------------------------------------

_STAMP = re.compile(r"_(\d{2})(\d{2})(\d{4})_(\d{6})")


def newest_export(paths: list) -> object | None:
    """The newest fluxIAE file by the DDMMYYYY_HHMMSS stamp of its name (else its mtime)."""
    def key(p):
        m = _STAMP.search(p.name)
        stamp = f"{m.group(3)}{m.group(2)}{m.group(1)}{m.group(4)}" if m else ""
        return (stamp, p.stat().st_mtime, p.name)

    return max(paths, key=key) if paths else None


def fetch_asp(spec: SourceSpec) -> list[Payload]:
    out = []
    for label, pattern in (("Structure", spec.path), ("AnnexeFinanciere", spec.annexes_path)):
        found = newest_export([p for p in pattern.parent.glob(pattern.name) if p.is_file()])
        if found is None:
            raise FetchError(f"source '{spec.name}': no {label} file matches {pattern}")
        out.append(Payload(read_whole(spec.name, found), str(found), found.name))
    return out
