"""Simplified outlines of the départements, dissolved from the communes' polygons.

The reference map page draws them as its background when no tile server is configured, so a
map used offline still shows where the points are.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

import shapely
from shapely import wkb

# About 1 km: borders stay recognisable at the zoom of a région, the file stays near 200 kB.
TOLERANCE_DEG = 0.01
GRID_DEG = 0.001  # coordinates rounded to ~100 m: shorter numbers, same drawing
# Holes under ~80 km² are slivers between communes or communes without a polygon in the
# reference, not enclaves (the Enclave des papes, in the Drôme, is ~300 km²).
MIN_HOLE_DEG2 = 1e-2


def _without_slivers(shape: shapely.Geometry) -> shapely.Geometry:
    parts = shapely.get_parts(shape)
    kept = [shapely.Polygon(p.exterior, [r for r in p.interiors
                                         if shapely.Polygon(r).area >= MIN_HOLE_DEG2])
            for p in parts if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(kept) if len(kept) > 1 else kept[0] if kept else shape


def dissolve(polygons: list) -> shapely.Geometry:
    """The union of adjacent polygons; the fast coverage union when they tile exactly, the
    general one when the reference has slivers or overlaps (a few départements do)."""
    try:
        merged = shapely.coverage_union_all(polygons)
        if merged.is_valid:
            return merged
    except shapely.errors.GEOSException:
        pass
    return shapely.union_all(polygons)


def departement_outlines(rows: Iterable[tuple[str, bytes]],
                         tolerance: float = TOLERANCE_DEG) -> dict[str, shapely.Geometry]:
    """(département code, commune polygon as WKB) rows → one simplified outline each."""
    by_dep: dict[str, list] = defaultdict(list)
    for code, blob in rows:
        if code and blob is not None:
            by_dep[code].append(wkb.loads(bytes(blob)))
    out = {}
    for code in sorted(by_dep):
        shape = shapely.simplify(_without_slivers(dissolve(by_dep[code])), tolerance)
        shape = shapely.set_precision(shape, GRID_DEG)
        if not shape.is_empty:
            out[code] = shape
    return out


def outlines_geojson(outlines: dict[str, shapely.Geometry], names: dict[str, str]) -> str:
    """A FeatureCollection with `code` and `nom` per département, sorted by code."""
    features = [{"type": "Feature", "properties": {"code": code, "nom": names.get(code)},
                 "geometry": json.loads(shapely.to_geojson(shape))}
                for code, shape in sorted(outlines.items())]
    return json.dumps({"type": "FeatureCollection", "features": features},
                      ensure_ascii=False, separators=(",", ":"))
