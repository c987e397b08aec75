"""The published GeoJSON: sorted, RFC 7946 points, no structure without coordinates."""

import datetime as dt
import json
import subprocess
import sys

import pytest

from tests.helpers import SHARED
from transforms.geojson import build_feature_collection


def structure(sid, lon, lat):
    return {
        "structure_id": sid,
        "nom": f"S {sid}",
        "types": ["ACI"],
        "longitude": lon,
        "latitude": lat,
        "date_maj": dt.date(2024, 1, 2),
        "sources": ["a"],
    }


STRUCTURES = [
    structure("siae-b", 4.4, 44.6),
    structure("siae-a", 4.1234567, 45.7654321),
    structure("siae-c", None, None),
]


def test_features_sorted_points_lon_lat_and_missing_coordinates_counted():
    text, without = build_feature_collection(STRUCTURES)
    doc = json.loads(text)
    assert without == 1
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert [f["id"] for f in doc["features"]] == ["siae-a", "siae-b"]
    first = doc["features"][0]
    assert first["geometry"] == {"type": "Point", "coordinates": [4.123457, 45.765432]}
    assert first["properties"]["types"] == ["ACI"]
    assert first["properties"]["date_maj"] == "2024-01-02"


def test_same_input_in_another_order_gives_the_same_bytes():
    assert build_feature_collection(STRUCTURES)[0] == build_feature_collection(STRUCTURES[::-1])[0]


@pytest.mark.skipif(
    not (SHARED / "tools" / "check_geojson.py").exists(),
    reason="../shared/tools/check_geojson.py not present",
)
def test_passes_the_shared_contract_checker(tmp_path):
    path = tmp_path / "siae.geojson"
    path.write_text(build_feature_collection(STRUCTURES)[0], encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(SHARED / "tools" / "check_geojson.py"), str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout
    assert out.stdout.strip() == "features=2"
