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


@pytest.mark.parametrize("row", [
    pytest.param({**structure("siae-d", 4.1234567, 45.7), "geo_score": 0.87654321,
                  "nom": "Élan \u2028 \"citation\" \x1f", "recrute": True}, id="plain"),
    pytest.param({**structure("siae-e", 4.4, 44.6), "geo_score": float("nan")}, id="nan-score"),
    pytest.param({**structure("siae-f", 4.4, 44.6), "types": ("ACI", "EI"),
                  "date_maj": dt.datetime(2024, 1, 2, 3, 4, 5)}, id="tuple-datetime"),
])
def test_a_feature_is_written_as_the_json_module_writes_it(row):
    # features are written by orjson; the json module's text is the reference (readable
    # diffs between publications, the same bytes for the same data)
    from transforms.geojson import _line, feature_lines
    lines, _ = feature_lines([row])
    assert lines[row["structure_id"]] == _line(row).encode("utf-8")


def test_values_orjson_refuses_are_written_all_the_same():
    np = pytest.importorskip("numpy")
    from transforms.geojson import _line, feature_lines
    row = {**structure("siae-g", np.float64(4.4), 44.6), "types": np.array(["ACI", "EI"]),
           "postes_ouverts": np.array([], dtype=object)}
    lines, without = feature_lines([row, structure("siae-h", float("nan"), 44.6)])
    assert without == 1
    assert json.loads(lines["siae-g"])["properties"]["types"] == ["ACI", "EI"]
    assert lines["siae-g"] == _line(row).encode("utf-8")


def test_feature_lines_are_read_back_by_id_from_a_collection():
    from transforms.geojson import collection_bytes, feature_lines, lines_by_id
    rows = [structure("siae-a", 4.4, 44.6), {**structure("siae-b", 4.5, 44.7), "nom": "Éa,\nb"}]
    lines, _ = feature_lines(rows)
    assert lines_by_id(collection_bytes(lines[k] for k in sorted(lines))) == lines
    assert lines_by_id(b"[]") == {} and lines_by_id(collection_bytes([])) == {}


def test_a_row_missing_fields_writes_them_null_as_a_full_row_does():
    from transforms.geojson import PROPERTIES, feature_line

    partial = structure("siae-p", 4.4, 44.6)
    full = dict.fromkeys(PROPERTIES) | partial | {"extra": "not published"}
    assert set(PROPERTIES) - set(partial)  # the partial row takes the slower path
    assert feature_line(partial) == feature_line(full)
    assert json.loads(feature_line(full))["properties"]["types"] == ["ACI"]
