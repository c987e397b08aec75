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
