"""A national-size run in CI: 20,000 source rows of 7,500 places, most without coordinates,
with the real patterns (tests/synthetic.py), through the whole pipeline (without Prefect and
the geocoder, which other tests cover) into a real warehouse."""

import pytest

from flows.evaluation import evaluate_resolution
from tests.helpers import query
from tests.synthetic import reference_for_generation, write_synthetic


@pytest.fixture(scope="module")
def national(tmp_path_factory):
    folder = tmp_path_factory.mktemp("national")
    counts = write_synthetic(folder, 7500, reference_for_generation(), seed=3, with_points=0.1)
    score = evaluate_resolution(folder / "sources.toml", folder / "truth.csv", folder / "wh")
    return folder, counts, score


def test_twenty_thousand_rows_mostly_without_coordinates_are_published(national):
    folder, counts, score = national
    assert counts["rows"] >= 20_000 and counts["siblings"] > 500
    home = folder / "wh"
    structures, published = query(home, "SELECT (SELECT count(*) FROM core.structures), "
                                        "(SELECT count(*) FROM marts.siae)")[0]
    assert published == structures >= 7500
    # located by a source point where one is plausible, else at the commune's centre
    refused_types = query(home, "SELECT typeof(geo_refused) FROM core.structures LIMIT 1")
    assert refused_types == [("VARCHAR[]",)]
    features = query(home, "SELECT count(*) FROM core.structures WHERE latitude IS NOT NULL")
    assert features[0][0] == structures
    assert (home / "publish" / "siae.geojson").exists()


def test_the_national_set_is_resolved_as_its_truth_says(national):
    _, _, score = national
    assert score.precision >= 0.995 and not score.mixed
    assert score.recall >= 0.98
    assert score.kinds_exact >= 0.995 and score.lost == []
