"""Location v0: plausible source points, else the commune's centre."""

import shapely

from transforms.location import choose_location, in_france, km_outside

# A 0.1° square around (4.4, 44.6), roughly 8 × 11 km, standing for a commune.
SQUARE = shapely.to_wkb(shapely.box(4.35, 44.55, 4.45, 44.65))
CENTRE = (4.4, 44.6)


def test_in_france_covers_metropole_corsica_and_overseas():
    assert in_france(4.4, 44.6) and in_france(8.7, 41.9) and in_france(55.45, -20.88)
    assert not in_france(44.6, 4.4)  # swapped
    assert not in_france(0.0, 0.0)


def test_km_outside_is_zero_inside_and_grows_outside():
    assert km_outside(SQUARE, 4.4, 44.6) == 0.0
    assert 0.9 < km_outside(SQUARE, 4.4, 44.66) < 1.2  # 0.01° of latitude ≈ 1.1 km


def test_first_plausible_source_point_wins():
    loc = choose_location([(44.6, 4.4, "a"), (4.41, 44.61, "b")], SQUARE, CENTRE, 2.0)
    assert (loc.longitude, loc.latitude, loc.geo_precision, loc.geo_source) == (
        4.41,
        44.61,
        "source",
        "b",
    )
    assert "outside France" in loc.rejected[0]


def test_a_point_far_from_its_commune_falls_back_to_the_centre():
    loc = choose_location([(4.9, 45.7, "a")], SQUARE, CENTRE, 2.0)
    assert (loc.longitude, loc.latitude, loc.geo_precision) == (4.4, 44.6, "municipality")
    assert "km outside its commune" in loc.rejected[0]


def test_no_point_and_no_commune_means_no_location():
    loc = choose_location([], None, None, 2.0)
    assert loc.longitude is None and loc.geo_precision is None


def test_coordinates_are_rounded_to_six_decimals():
    loc = choose_location([(4.41234567, 44.61234567, "a")], None, None, 2.0)
    assert (loc.longitude, loc.latitude) == (4.412346, 44.612346)


def test_a_commune_the_reference_missed_comes_from_the_geocoder():
    import json

    import pandas as pd

    from transforms.location import communes_from_geocoder

    structures = pd.DataFrame([
        {"structure_id": "s1", "code_insee": None, "commune": "Capavenir Vosges",
         "code_arrondissement": None, "departement": "88", "region": "44", "provenance": "{}"},
        {"structure_id": "s2", "code_insee": "69123", "commune": "Lyon",
         "code_arrondissement": "69383", "departement": "69", "region": "84",
         "provenance": "{}"}], dtype=object)
    communes = {"88465": {"code_insee": "88465", "nom": "Thaon-les-Vosges", "type": "COM",
                          "parent_code": None, "departement": "88", "region": "44"}}
    geocoded = {"s1": (6.41, 48.25, "housenumber", 0.9, "88465"),
                "s2": (4.85, 45.76, "housenumber", 0.9, "88465")}  # s2 has its commune
    out = communes_from_geocoder(structures, geocoded, communes).to_dict("records")
    assert (out[0]["code_insee"], out[0]["commune"]) == ("88465", "Thaon-les-Vosges")
    assert json.loads(out[0]["provenance"])["commune"] == "ban"
    assert out[1]["code_insee"] == "69123" and out[1]["commune"] == "Lyon"


def test_points_in_their_commune_are_checked_for_all_structures_at_once():
    """locate_structures checks every candidate point in one vectorised call; each structure
    gets what choose_location alone gives it: inside, just outside (kept), far outside
    (refused), swapped, an arrondissement's shape before its city's, and no shape at all."""
    import pandas as pd

    from transforms.location import km_outside_many, locate_structures

    other = shapely.to_wkb(shapely.box(2.30, 48.80, 2.40, 48.90))
    shapes = {"07010": {"polygon": SQUARE, "centre": CENTRE},
              "75056": {"polygon": SQUARE, "centre": CENTRE},
              "75101": {"polygon": other, "centre": (2.35, 48.85)}}
    cases = [
        ("inside", "07010", None, [(4.41, 44.61, "a")]),
        ("just-outside", "07010", None, [(4.4, 44.66, "a")]),
        ("far-then-inside", "07010", None, [(4.9, 45.7, "a"), (4.36, 44.56, "b")]),
        ("swapped", "07010", None, [(44.6, 4.4, "a")]),
        ("arrondissement", "75056", "75101", [(4.41, 44.61, "a"), (2.35, 48.85, "b")]),
        ("no-shape", "99999", None, [(4.9, 45.7, "a")]),
        ("no-point", "07010", None, []),
    ]
    frame = pd.DataFrame([{"structure_id": sid, "code_insee": code,
                           "code_arrondissement": arr,
                           "coordinate_candidates": tuple(v for p in points for v in p)}
                          for sid, code, arr, points in cases])
    out = locate_structures(frame, shapes, 2.0)
    for (sid, code, arr, points), got in zip(cases, out.to_dict("records"), strict=True):
        shape = shapes.get(arr or "") or shapes.get(code) or {}
        alone = choose_location(points, shape.get("polygon"), shape.get("centre"), 2.0)
        assert (got["longitude"], got["latitude"], got["geo_source"], got["geo_refused"]) == (
            alone.longitude, alone.latitude, alone.geo_source, list(alone.rejected)), sid
    assert out.set_index("structure_id").loc["arrondissement", "geo_source"] == "b"
    points = [(SQUARE, 4.4, 44.6), (SQUARE, 4.4, 44.66), (other, 4.4, 44.6), (SQUARE, 5.0, 44.0)]
    assert km_outside_many(*zip(*points, strict=True)).tolist() == [
        km_outside(*p) for p in points]
