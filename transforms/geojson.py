"""The published GeoJSON: RFC 7946 Points, sorted by structure_id, byte-stable."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping

from transforms.publication import FIELD_NAMES

# The properties of a feature: the published fields, in their order.
PROPERTIES = FIELD_NAMES


_PLAIN = (str, bool, int)


def _json_value(value: object) -> object:
    if value is None or type(value) in _PLAIN:  # most values: returned first
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _json_value(value.tolist())
    return value


def feature_lines(structures: Iterable[Mapping[str, object]]) -> tuple[dict[str, str], int]:
    """Each located structure's feature as one line of JSON, by structure_id, and the number
    left out for lack of coordinates. Serialised once for the national file and the
    regions' files alike."""
    lines, without = {}, 0
    for s in structures:
        lon, lat = _json_value(s.get("longitude")), _json_value(s.get("latitude"))
        if lon is None or lat is None:
            without += 1
            continue
        feature = {
            "type": "Feature",
            "id": s["structure_id"],
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {k: _json_value(s.get(k)) for k in PROPERTIES},
        }
        lines[s["structure_id"]] = json.dumps(feature, ensure_ascii=False,
                                              separators=(",", ":"))
    return lines, without


def collection_text(lines: Iterable[str]) -> str:
    """A FeatureCollection of features already serialised (in the order given)."""
    # One feature per line: readable, diffable between publications, still compact.
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"


def build_feature_collection(structures: Iterable[Mapping[str, object]]) -> tuple[str, int]:
    """GeoJSON text, features sorted by structure_id, and the number of structures left out
    for lack of coordinates."""
    lines, without = feature_lines(structures)
    return collection_text(lines[k] for k in sorted(lines)), without
