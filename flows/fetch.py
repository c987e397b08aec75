"""Fetching a source's payloads (a local file, a URL, or a public API through its connector)
and landing them untouched under raw/."""

from __future__ import annotations

from pathlib import Path

from flows import connectors
from flows.http import FetchError, Payload, download, http_session, token_from_env
from transforms.readers import guess_format
from transforms.spec import SourceSpec

__all__ = ["FetchError", "Payload", "fetch_payloads", "land", "newest_match"]


def newest_match(pattern: Path) -> Path | None:
    """The most recently modified file matching a glob (ties broken by name)."""
    matches = [p for p in pattern.parent.glob(pattern.name) if p.is_file()]
    if not matches:
        return None
    return max(matches, key=lambda p: (p.stat().st_mtime, p.name))


def _read_file(spec: SourceSpec) -> Payload:
    assert spec.path is not None
    found = newest_match(spec.path)
    if found is None:
        raise FetchError(f"source '{spec.name}': no file matches {spec.path}")
    return Payload(found.read_bytes(), str(found), found.name)


def _read_http(spec: SourceSpec, user_agent: str) -> Payload:
    assert spec.url is not None
    token = token_from_env(spec.name, spec.token_env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    session = http_session(user_agent, spec.retries)
    try:
        data = download(session, spec.name, spec.url, timeout=spec.timeout, headers=headers,
                        what=spec.format or guess_format(spec.url) or "data")
    finally:
        session.close()
    name = spec.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "payload"
    return Payload(data, spec.url, name)


def fetch_payloads(spec: SourceSpec, user_agent: str) -> list[Payload]:
    """The source's payloads, as published (one, or two for the ASP export)."""
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
