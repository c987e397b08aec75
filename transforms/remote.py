"""What a publication target (an S3-compatible bucket) holds: each release's files under
`releases/<release_id>/` with their HTTP headers, and the small `current.json` pointer that
map sites read first. Pure functions; the uploads are in flows/targets.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from transforms.compression import gzip_copy

CONTENT_TYPES = {
    "geojson": "application/geo+json",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "gpkg": "application/geopackage+sqlite3",
}
# A release's files never change once uploaded: cached for a year.
RELEASE_CACHE = "public, max-age=31536000, immutable"
# Text files also get a gzip copy (`<name>.gz`, Content-Encoding: gzip) for map sites that
# fetch them from a browser; the plain file stays for every other client.
COMPRESSED = ("geojson", "json", "csv")
POINTER = "current.json"


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")


def pointer_cache(max_age: int) -> str:
    """Cache-Control of current.json: short, so that a new release shows up soon."""
    return "no-cache" if max_age == 0 else f"public, max-age={max_age}, must-revalidate"


def release_objects(release_id: str, files: Mapping[str, bytes]) -> list[tuple[str, bytes, dict]]:
    """(key, bytes, attributes) of every object of a release, the gzip copies included,
    sorted by key."""
    out = []
    for name, data in sorted(files.items()):
        key = f"releases/{release_id}/{name}"
        attrs = {"Content-Type": content_type(name), "Cache-Control": RELEASE_CACHE}
        out.append((key, data, attrs))
        if name.rsplit(".", 1)[-1] in COMPRESSED:
            out.append((key + ".gz", gzip_copy(data),
                        {**attrs, "Content-Encoding": "gzip"}))
    return out


def pointer_doc(release_id: str, published_at: str | None, structures: int | None,
                features: int | None, files: Mapping[str, bytes]) -> dict:
    """current.json: which release is current and what it holds. `base` is relative to the
    pointer's own folder."""
    return {
        "release": release_id,
        "published_at": published_at,
        "structures": structures,
        "features": features,
        "base": f"releases/{release_id}/",
        "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         **({"gzip": f"{name}.gz"}
                            if name.rsplit(".", 1)[-1] in COMPRESSED else {})}
                  for name, data in sorted(files.items())},
    }


def pointer_bytes(doc: Mapping) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def drop_refused(new_structures: int, current: Mapping | None, max_drop_share: float) -> str | None:
    """Why a target refuses a release (the same guard as the local folder), or None."""
    if not current or not current.get("structures"):
        return None
    before = int(current["structures"])
    if new_structures < (1 - max_drop_share) * before:
        return (f"the new release has {new_structures} structures against {before} in the "
                f"target's current one, a drop over {max_drop_share:.0%}")
    return None


def releases_to_prune(release_ids: list[str], keep: int, current: str) -> list[str]:
    """The oldest releases beyond the `keep` newest ones; never the current one."""
    others = sorted(r for r in set(release_ids) if r != current)
    return others[: max(0, len(others) - keep)]
