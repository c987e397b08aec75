"""Publication targets: the current release copied to S3-compatible buckets for map sites that
read from object storage (`[publication] targets`).

For each target: the release's files go under `releases/<release_id>/` (with Content-Type,
Cache-Control and gzip copies), and only when every one of them is there does `current.json`
switch to it. A map site that reads `current.json`, then the files it names, always gets a
complete release. A failed upload leaves the target's pointer on its previous release; the
drop guard of the local folder applies to each target's own current release; a target that
lags behind (a failed upload, a new target) catches up at the next publication step.
Credentials and endpoint come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION, AWS_ENDPOINT_URL for a non-AWS provider), never from sources.toml.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from flows.publish import current_release
from transforms.remote import (
    POINTER,
    drop_refused,
    pointer_bytes,
    pointer_cache,
    pointer_doc,
    release_objects,
    releases_to_prune,
)
from transforms.spec import Publication
from warehouse import publications
from warehouse.db import connect
from warehouse.paths import WarehousePaths


@dataclass
class TargetResult:
    target: str
    status: str  # uploaded, unchanged, refused, failed
    release: str | None = None  # what the target's current.json points to afterwards
    objects: int = 0
    bytes: int = 0
    pruned: int = 0
    message: str | None = None


def open_store(target: str):
    """An obstore S3Store for `s3://bucket/prefix`, configured from the environment."""
    from obstore.store import S3Store

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") \
        or ""
    # a local or private endpoint without TLS (MinIO, moto) must be allowed explicitly
    options = {"allow_http": True} if endpoint.startswith("http://") else None
    return S3Store.from_url(target, client_options=options)


def read_pointer(store) -> dict | None:
    """The target's current.json, or None when it has none yet."""
    import obstore

    try:
        data = obstore.get(store, POINTER).bytes()
    except FileNotFoundError:
        return None
    return json.loads(bytes(data))


def _release_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _release_ids(store) -> list[str]:
    import obstore

    listed = obstore.list_with_delimiter(store, "releases/")
    return [p.rstrip("/").rsplit("/", 1)[-1] for p in listed["common_prefixes"]]


def upload_to_target(target: str, release_dir: Path, record: tuple | None,
                     settings: Publication, force: bool = False, store=None) -> TargetResult:
    """Copy one release to one target, then switch its pointer; never raises."""
    import obstore

    release_id = release_dir.name
    try:
        store = store or open_store(target)
        current = read_pointer(store)
        if current and current.get("release") == release_id:
            return TargetResult(target, "unchanged", release_id)
        files = _release_files(release_dir)
        structures = record[2] if record else json.loads(
            files["datapackage.json"]).get("rows")
        refused = None if force else drop_refused(structures, current,
                                                  settings.max_drop_share)
        if refused:
            return TargetResult(target, "refused", current.get("release"),
                                message=f"{refused}: refused, the target keeps release "
                                        f"{current.get('release')} (--force to publish)")
        objects = release_objects(release_id, files)
        for key, data, attrs in objects:
            obstore.put(store, key, data, attributes=attrs)
        doc = pointer_doc(release_id, record[1].isoformat(timespec="seconds")
                          if record else None, structures, record[3] if record else None,
                          files)
        # the switch: one small object, written last
        obstore.put(store, POINTER, pointer_bytes(doc),
                    attributes={"Content-Type": "application/json",
                                "Cache-Control": pointer_cache(settings.pointer_max_age)})
        pruned = releases_to_prune(_release_ids(store), settings.keep, release_id)
        for old in pruned:
            keys = [o["path"] for batch in obstore.list(store, prefix=f"releases/{old}/")
                    for o in batch]
            if keys:
                obstore.delete(store, keys)
        return TargetResult(target, "uploaded", release_id, len(objects),
                            sum(len(d) for _, d, _ in objects), len(pruned))
    except Exception as exc:  # a target never breaks the local publication
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kept = current.get("release") if "current" in locals() and current else None
        return TargetResult(target, "failed", kept,
                            message=f"{first[:300]}; the target keeps "
                                    f"{f'release {kept}' if kept else 'what it had'}")


def publish_to_targets(home: Path, settings: Publication, force: bool = False
                       ) -> list[TargetResult]:
    """Bring every target to the local current release."""
    if not settings.targets:
        return []
    paths = WarehousePaths(home)
    release = current_release(paths)
    if release is None:
        return [TargetResult(t, "failed", message="no local publication to copy")
                for t in settings.targets]
    with connect(paths.database, read_only=True) as con:
        record = next((r for r in publications.publications(con) if r[0] == release.name),
                      None)
    return [upload_to_target(t, release, record, settings, force) for t in settings.targets]
