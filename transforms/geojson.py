"""The published GeoJSON: RFC 7946 Points, sorted by structure_id, byte-stable."""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
from collections.abc import Iterable, Mapping

import orjson

from transforms.publication import FIELD_NAMES, FIELDS

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


def feature_lines(structures: Iterable[Mapping[str, object]],
                  reuse: Mapping[str, bytes] | None = None) -> tuple[dict[str, bytes], int]:
    """Each located structure's feature as one line of UTF-8 JSON, by structure_id, and the
    number left out for lack of coordinates. Serialised once for the national file and the
    regions' files alike. `reuse`: the lines of the previous publication for structures
    whose row is unchanged (`lines_by_id`): taken as they are."""
    lines, without = {}, 0
    reuse = reuse or {}
    for s in structures:
        if (kept := reuse.get(s["structure_id"])) is not None:
            lines[s["structure_id"]] = kept
            continue
        line = feature_line(s)
        if line is None:
            without += 1
        else:
            lines[s["structure_id"]] = line
    return lines, without


def feature_line(s: Mapping[str, object]) -> bytes | None:
    """A structure's feature as one line of UTF-8 JSON, None when it has no coordinates."""
    try:
        return _fast_line(s)
    except (TypeError, orjson.JSONEncodeError):
        # a value orjson or round() refuses (numpy, text for a number)
        text = _line(s)
        return None if text is None else text.encode("utf-8")


# The fields typed as numbers: the only values rounded (the others are text, lists, dates,
# booleans, which orjson writes as `json` would).
_NUMBERS = tuple(name for name, kind, _ in FIELDS if kind == "number")
# A row's properties in one C call when it has every field (a published row does): a
# dict comprehension of .get() calls was a third of the line's time at national size.
_PROPERTY_VALUES = operator.itemgetter(*PROPERTIES)


def _fast_line(s: Mapping[str, object]) -> bytes | None:
    # orjson, and a loop over the number fields only: a third of the time of _line(), the
    # same text (except numbers below 1e-4, written 1e-6 instead of 1e-06: the same JSON)
    lon, lat = s.get("longitude"), s.get("latitude")
    if lon is None or lat is None or lon != lon or lat != lat:  # None or NaN
        return None
    try:
        properties = dict(zip(PROPERTIES, _PROPERTY_VALUES(s), strict=True))
    except KeyError:  # a row without some fields: they are null
        properties = {k: s.get(k) for k in PROPERTIES}
    for k in _NUMBERS:
        v = properties[k]
        if v is not None:
            properties[k] = None if v != v else round(v, 6)
    return orjson.dumps({"type": "Feature", "id": s["structure_id"],
                         "geometry": {"type": "Point",
                                      "coordinates": [round(lon, 6), round(lat, 6)]},
                         "properties": properties})


def _line(s: Mapping[str, object]) -> str | None:
    lon, lat = _json_value(s.get("longitude")), _json_value(s.get("latitude"))
    if lon is None or lat is None:
        return None
    feature = {
        "type": "Feature",
        "id": s["structure_id"],
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {k: _json_value(s.get(k)) for k in PROPERTIES},
    }
    return json.dumps(feature, ensure_ascii=False, separators=(",", ":"))


# A collection's bytes: the head, the features' lines joined by the separator, the tail. One
# feature per line: readable, diffable between publications, still compact.
COLLECTION_HEAD = b'{"type":"FeatureCollection","features":[\n'
COLLECTION_SEPARATOR = b",\n"
COLLECTION_TAIL = b"\n]}\n"
_HEAD, _TAIL = COLLECTION_HEAD, COLLECTION_TAIL
_FEATURE = b'{"type":"Feature","id":"'


def collection_bytes(lines: Iterable[bytes]) -> bytes:
    """A FeatureCollection of features already serialised (in the order given), in UTF-8."""
    # Bytes throughout: text of a national file costs twice its size and a copy at each step.
    return b"".join((_HEAD, COLLECTION_SEPARATOR.join(lines), _TAIL))


def lines_by_id(data: bytes) -> dict[str, bytes]:
    """The feature lines of a collection written by `collection_bytes`, by id (a line whose
    id cannot be read without parsing it is left out: it is encoded again)."""
    if not data.startswith(_HEAD) or not data.endswith(_TAIL):
        return {}
    body = data[len(_HEAD):-len(_TAIL)]
    out = {}
    start = len(_FEATURE)
    for line in body.split(b",\n") if body else []:
        # a feature never holds a raw newline (JSON escapes it): one feature per line
        if line.startswith(_FEATURE) and (end := line.find(b'"', start)) > 0 \
                and b"\\" not in line[start:end]:
            out[line[start:end].decode("utf-8")] = line
    return out


def build_feature_collection(structures: Iterable[Mapping[str, object]]) -> tuple[str, int]:
    """GeoJSON text, features sorted by structure_id, and the number of structures left out
    for lack of coordinates."""
    lines, without = feature_lines(structures)
    return collection_bytes(lines[k] for k in sorted(lines)).decode("utf-8"), without
