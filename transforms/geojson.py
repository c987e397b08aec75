"""The published GeoJSON: RFC 7946 Points, sorted by structure_id, byte-stable."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping

from transforms.publication import FIELD_NAMES

# The properties of a feature: the published fields, in their order.
PROPERTIES = FIELD_NAMES


def _json_value(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _json_value(value.tolist())
    return value


def build_feature_collection(structures: Iterable[Mapping[str, object]]) -> tuple[str, int]:
    """GeoJSON text and the number of structures left out for lack of coordinates."""
    features, without = [], 0
    for s in structures:
        lon, lat = _json_value(s.get("longitude")), _json_value(s.get("latitude"))
        if lon is None or lat is None:
            without += 1
            continue
        features.append(
            {
                "type": "Feature",
                "id": s["structure_id"],
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {k: _json_value(s.get(k)) for k in PROPERTIES},
            }
        )
    features.sort(key=lambda f: f["id"])
    # One feature per line: readable, diffable between publications, still compact.
    lines = ",\n".join(json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features)
    return '{"type":"FeatureCollection","features":[\n' + lines + "\n]}\n", without
