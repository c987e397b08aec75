"""siae.gpkg: what GIS users open; each value must read back as published."""

import datetime as dt

import pyogrio
import pytest

from transforms.geopackage import LAYER, gpkg_bytes
from transforms.publication import FIELD_NAMES

FULL = {
    "structure_id": "S1", "siret": "12345678900011", "siren": "123456789",
    "nom": "Régie de quartier « Nord »", "types": ["ACI", "EI"], "adresse": "1 rue de l'Église",
    "code_postal": "69001", "commune": "Lyon", "code_insee": "69381", "departement": "69",
    "region": "84", "latitude": 45.767, "longitude": 4.834, "geo_precision": "housenumber",
    "geo_score": 0.93, "geo_source": "ban", "telephone": "+33472000000",
    "recrute": True, "postes_ouverts": ["Agent d'entretien"], "date_maj": dt.date(2026, 5, 4),
    "sources": ["asp", "emplois"],
}
SPARSE = {"structure_id": "S2", "nom": "Atelier", "types": ["AI"], "latitude": 43.6,
          "longitude": 1.44, "recrute": None, "postes_ouverts": [], "date_maj": None,
          "sources": ["reseau"]}
NO_POINT = {"structure_id": "S3", "nom": "Sans adresse", "types": ["ETTI"], "sources": ["asp"]}


@pytest.fixture
def layer(tmp_path):
    path = tmp_path / "siae.gpkg"
    path.write_bytes(gpkg_bytes([FULL, SPARSE, NO_POINT]))
    return pyogrio.read_dataframe(path, layer=LAYER).set_index("structure_id")


def test_only_structures_with_a_point_are_features(layer):
    assert sorted(layer.index) == ["S1", "S2"]


def test_every_published_field_is_a_column(layer):
    assert set(FIELD_NAMES) - {"structure_id"} <= set(layer.columns)


def test_values_read_back_as_published(layer):
    full = layer.loc["S1"]
    assert full["nom"] == FULL["nom"] and full["adresse"] == FULL["adresse"]
    assert full["types"] == "ACI|EI" and full["sources"] == "asp|emplois"
    assert full["recrute"] is True or full["recrute"] == 1
    assert str(full["date_maj"])[:10] == "2026-05-04"
    assert full["geo_score"] == pytest.approx(0.93)
    assert (full.geometry.x, full.geometry.y) == pytest.approx((4.834, 45.767))


def test_missing_values_stay_empty_and_an_empty_list_is_an_empty_text(layer):
    sparse = layer.loc["S2"]
    for name in ("siret", "telephone", "date_maj", "recrute", "geo_score"):
        assert sparse[name] is None or sparse[name] != sparse[name], name  # None or NaN/NaT
    assert sparse["postes_ouverts"] == ""


def test_the_same_rows_give_the_same_bytes():
    assert gpkg_bytes([FULL, SPARSE]) == gpkg_bytes([dict(FULL), dict(SPARSE)])
