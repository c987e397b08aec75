"""Départements' outlines dissolved from commune polygons (the map's offline background)."""

import json

import shapely
from shapely.geometry import box

from transforms.outlines import departement_outlines, outlines_geojson


def row(dep, geom):
    return dep, shapely.to_wkb(geom)


def test_adjacent_communes_dissolve_into_one_outline_per_departement():
    rows = [row("69", box(4.0, 45.0, 4.5, 45.5)), row("69", box(4.5, 45.0, 5.0, 45.5)),
            row("38", box(5.0, 45.0, 5.5, 45.5))]
    out = departement_outlines(rows)
    assert sorted(out) == ["38", "69"]
    assert out["69"].geom_type == "Polygon"
    assert abs(out["69"].area - 0.5 * 0.5 * 2) < 1e-9


def test_overlapping_communes_still_dissolve():
    # the reference has a few overlaps, where the fast coverage union refuses
    rows = [row("2A", box(8.0, 41.0, 8.6, 41.5)), row("2A", box(8.5, 41.0, 9.0, 41.5))]
    out = departement_outlines(rows)
    assert out["2A"].is_valid and abs(out["2A"].area - 1.0 * 0.5) < 1e-9


def test_rows_without_polygon_or_departement_are_skipped_and_coordinates_rounded():
    rows = [row("07", box(4.123456, 44.6, 4.5, 44.9)), ("07", None),
            (None, shapely.to_wkb(box(0, 0, 1, 1)))]
    doc = json.loads(outlines_geojson(departement_outlines(rows), {"07": "Ardèche"}))
    (feature,) = doc["features"]
    assert feature["properties"] == {"code": "07", "nom": "Ardèche"}
    xs = [x for x, _ in feature["geometry"]["coordinates"][0]]
    assert all(round(x, 3) == x for x in xs) and 4.123 in xs


def test_slivers_between_communes_are_filled_but_enclaves_kept():
    ring = box(4.0, 45.0, 5.0, 46.0)
    sliver = box(4.5, 45.5, 4.501, 45.501)  # a gap of ~100 m between communes
    missing = box(4.7, 45.7, 4.75, 45.75)  # a commune without polygon in the reference
    enclave = box(4.2, 45.2, 4.4, 45.4)  # another département's communes inside
    rows = [row("26", ring.difference(sliver).difference(missing).difference(enclave))]
    (outline,) = departement_outlines(rows).values()
    assert len(outline.interiors) == 1 and abs(outline.area - (1 - 0.04)) < 1e-6
