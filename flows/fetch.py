"""Fetching a source's payloads (a local file, a URL, or a public API through its connector)
and landing them untouched under raw/."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

from flows import connectors
from flows.http import (
    FetchError,
    Payload,
    download,
    http_session,
    read_whole,
    token_from_env,
)
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
    return Payload(read_whole(spec.name, found), str(found), found.name)


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


def write_manifest(raw_dir: Path, source: str, run_id: str, at: dt.datetime,
                   payloads: list[Payload], targets: list[Path]) -> Path:
    """Record one successful fetch beside its payloads (raw/<source>/fetches/): which files,
    in which order, from where, when. With the payloads it is enough to rebuild the
    warehouse (`siae rebuild`) without the network."""
    folder = raw_dir / source / "fetches"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{at:%Y%m%dT%H%M%S.%f}-{run_id}.json"
    doc = {"source": source, "run_id": run_id, "fetched_at": at.isoformat(),
           "files": [{"name": p.name, "file": t.name, "sha256": p.sha256,
                      "location": p.location} for p, t in zip(payloads, targets, strict=True)]}
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def landed_manifests(raw_dir: Path, source: str) -> Iterator[dict]:
    """The recorded fetches of a source whose payloads are all still landed, newest first."""
    folder = raw_dir / source / "fetches"
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.exists() else []:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if all((raw_dir / source / f["file"]).exists() for f in doc["files"]):
            yield doc


def latest_manifest(raw_dir: Path, source: str) -> dict | None:
    """The newest recorded fetch of a source whose payloads are all still landed."""
    return next(landed_manifests(raw_dir, source), None)


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
