"""Fetching a source's payload (local file or HTTP) and landing it untouched under raw/."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from transforms.readers import guess_format
from transforms.spec import SourceSpec


class FetchError(RuntimeError):
    """A source could not be fetched; the message names the source and never a secret."""


@dataclass(frozen=True)
class Payload:
    data: bytes
    location: str  # path or URL, without credentials
    name: str  # file name, for guessing the format

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def newest_match(pattern: Path) -> Path | None:
    """The most recently modified file matching a glob (ties broken by name)."""
    matches = [p for p in pattern.parent.glob(pattern.name) if p.is_file()]
    if not matches:
        return None
    return max(matches, key=lambda p: (p.stat().st_mtime, p.name))


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


def _read_file(spec: SourceSpec) -> Payload:
    assert spec.path is not None
    found = newest_match(spec.path)
    if found is None:
        raise FetchError(f"source '{spec.name}': no file matches {spec.path}")
    return Payload(found.read_bytes(), str(found), found.name)


def _read_http(spec: SourceSpec, user_agent: str) -> Payload:
    assert spec.url is not None
    headers = {}
    if spec.token_env:
        token = os.environ.get(spec.token_env)
        if not token:
            raise FetchError(
                f"source '{spec.name}': environment variable {spec.token_env} "
                "is not set (it holds the API token)"
            )
        headers["Authorization"] = f"Bearer {token}"
    session = http_session(user_agent, spec.retries)
    try:
        response = session.get(spec.url, headers=headers, timeout=spec.timeout)
    except requests.RequestException as exc:
        raise FetchError(
            f"source '{spec.name}': GET {spec.url} failed: {type(exc).__name__}"
        ) from exc
    finally:
        session.close()
    if response.status_code != 200:
        raise FetchError(
            f"source '{spec.name}': GET {spec.url} answered HTTP {response.status_code}"
        )
    content_type = response.headers.get("Content-Type", "")
    fmt = spec.format or guess_format(spec.url)
    if "text/html" in content_type and fmt != "html":
        raise FetchError(
            f"source '{spec.name}': GET {spec.url} returned an HTML page instead of {fmt or 'data'}"
        )
    name = spec.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "payload"
    return Payload(response.content, spec.url, name)


def fetch_payloads(spec: SourceSpec, user_agent: str) -> list[Payload]:
    """The source's payloads, as published (one, or two for the ASP export)."""
    from flows import connectors

    if spec.kind == "file" or spec.offline:
        return [_read_file(spec)]
    if spec.kind == "http":
        return [_read_http(spec, user_agent)]
    if spec.kind == "datainclusion":
        return connectors.fetch_datainclusion(spec, user_agent)
    if spec.kind == "recherche_entreprises":
        return connectors.fetch_recherche_entreprises(spec, user_agent)
    if spec.kind == "emplois":
        return connectors.fetch_emplois(spec, user_agent)
    if spec.kind == "asp_fluxiae":
        return connectors.fetch_asp(spec)
    raise FetchError(f"source '{spec.name}': kind '{spec.kind}' cannot be fetched")


def fetch_payload(spec: SourceSpec, user_agent: str) -> Payload:
    """The single payload of a file or http source."""
    return fetch_payloads(spec, user_agent)[0]


def land(raw_dir: Path, source: str, payload: Payload) -> Path:
    """Write the payload under raw/<source>/<sha256><suffix> unless already there."""
    suffix = "".join(Path(payload.name).suffixes[-2:]) or ".bin"
    target = raw_dir / source / f"{payload.sha256}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(payload.data)
        tmp.replace(target)
    return target
