"""Postcodes, départements and commune resolution against the reference."""

import pytest

from transforms.errors import InvalidValue
from transforms.places import (
    departement_of_insee,
    departement_of_postcode,
    name_key,
    normalize_departement,
    normalize_postcode,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("69003", "69003"),
        ("7200", "07200"),
        ("7200.0", "07200"),
        ("69 003", "69003"),
        ("69361 CEDEX 07", "69361"),
        ("", None),
    ],
    ids=["plain", "lost-zero", "float-cell", "space", "cedex", "empty"],
)
def test_normalize_postcode(raw, expected):
    assert normalize_postcode(raw) == expected


@pytest.mark.parametrize("raw", ["690", "ABCDE", "00123", "٠٧٢٠٠", "０７２００", "07²00"])
def test_invalid_postcode(raw):
    with pytest.raises(InvalidValue, match="code_postal_invalide"):
        normalize_postcode(raw)


@pytest.mark.parametrize(
    ("cp", "dep"),
    [
        ("69003", "69"),
        ("20000", "2A"),
        ("20200", "2B"),
        ("97400", "974"),
        ("97600", "976"),
        (None, None),
    ],
)
def test_departement_of_postcode(cp, dep):
    assert departement_of_postcode(cp) == dep


def test_departement_of_insee():
    assert departement_of_insee("2A004") == "2A"
    assert departement_of_insee("97411") == "974"
    assert departement_of_insee("69123") == "69"


def test_name_key_folds_spelling_variants():
    assert name_key("LYON CEDEX 07") == name_key("Lyon")
    assert name_key("St Étienne") == name_key("Saint-Etienne")
    assert name_key("Puy en Velay") == name_key("Le Puy-en-Velay")


def test_postcode_and_name_pick_one_commune_among_several(tiny_communes):
    place = tiny_communes.resolve("07200", "AUBENAS")
    assert (place.code_insee, place.departement, place.region) == ("07019", "07", "84")
    assert place.method == "code_postal+commune"


def test_postcode_alone_is_enough_when_it_has_one_commune(tiny_communes):
    assert tiny_communes.resolve("43000", None).commune == "Le Puy-en-Velay"
    assert tiny_communes.resolve("07200", None) is None  # two communes share it


def test_arrondissement_folds_into_the_city_and_is_kept_apart(tiny_communes):
    place = tiny_communes.resolve("69003", "Lyon")
    assert (place.code_insee, place.code_arrondissement, place.commune) == (
        "69123",
        "69383",
        "Lyon",
    )


def test_cedex_postcode_falls_back_to_name_in_departement(tiny_communes):
    place = tiny_communes.resolve("69361", "LYON CEDEX 07")
    assert place.code_insee == "69123" and place.method == "departement+commune"


def test_former_commune_name_and_code_lead_to_the_current_one(tiny_communes):
    assert tiny_communes.resolve("01300", "Arbignieu").code_insee == "01015"
    assert tiny_communes.resolve(None, None, "01015").commune == "Arboys en Bugey"


def test_corsica_and_overseas(tiny_communes):
    assert tiny_communes.resolve("20000", "Ajaccio").departement == "2A"
    reunion = tiny_communes.resolve("97400", "St Denis")
    assert (reunion.departement, reunion.region) == ("974", "04")


def test_unknown_commune_is_none(tiny_communes):
    assert tiny_communes.resolve("99999", "Atlantis") is None


def test_without_postcode_a_name_borne_by_one_commune_only_is_enough(tiny_communes):
    place = tiny_communes.resolve(None, "aubenas")
    assert (place.code_insee, place.method) == ("07019", "commune")
    assert tiny_communes.resolve("", "Ajaccio").code_insee == "2A004"
    assert tiny_communes.resolve(None, "Arbignieu") is None  # a former name needs its place


def test_without_postcode_a_name_two_communes_bear_is_not_guessed():
    import pandas as pd

    from transforms.places import CommuneIndex

    communes = pd.DataFrame([("93066", "Saint-Denis", "COM", None, "93", "11"),
                             ("97411", "Saint-Denis", "COM", None, "974", "04")],
                            columns=["code_insee", "nom", "type", "parent_code", "departement",
                                     "region"], dtype=object)
    index = CommuneIndex(communes, pd.DataFrame({"code_postal": [], "code_insee": []}),
                         pd.DataFrame({"departement": ["93", "974"], "region": ["11", "04"]}))
    assert index.resolve(None, "St Denis") is None
    assert index.resolve("93200", "Saint-Denis").code_insee == "93066"


@pytest.mark.parametrize(("raw", "code"), [
    ("1", "01"), ("2a", "2A"), ("Rhône (69)", "69"), ("974", "974"), ("07.0", "07")],
    ids=["lost-zero", "corsica", "in-a-name", "overseas", "float-cell"])
def test_normalize_departement(raw, code):
    assert normalize_departement(raw) == code


@pytest.mark.parametrize("raw", ["٠٧", "０７", "00", "ZZ"],
                         ids=["arabic-indic", "fullwidth", "zero", "letters"])
def test_invalid_departement(raw):
    with pytest.raises(InvalidValue, match="departement_invalide"):
        normalize_departement(raw)
