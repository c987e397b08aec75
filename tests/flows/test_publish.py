"""Releases: built aside, swapped in one rename, guarded, logged, kept, listed."""

import csv
import hashlib
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.publish import PublishRefused, list_publications, publish_release
from tests.helpers import BASE, load, structure
from transforms.spec import Publication
from warehouse.db import connect
from warehouse.paths import WarehousePaths


def test_first_release_has_every_file_described_by_the_datapackage(tmp_path):
    load(tmp_path, BASE)
    result = publish_release(tmp_path)
    publish = tmp_path / "publish"
    assert publish.is_symlink() and result["status"] == "published"
    assert (result["structures"], result["features"]) == (22, 21)
    package = json.loads((publish / "datapackage.json").read_text())
    for res in package["resources"]:
        data = (publish / res["path"]).read_bytes()
        assert res.get("bytes", res.get("x-bytes")) == len(data)
        assert res.get("hash", "sha256:" + res.get("x-sha256", "")) == \
            "sha256:" + hashlib.sha256(data).hexdigest()
    paths = {r["path"] for r in package["resources"]}
    assert paths == {"siae.geojson", "siae.csv", "siae.parquet", "siae.gpkg",
                     "regions/84.geojson", "regions/11.geojson",
                     "datainclusion/structures.json", "datainclusion/structures.csv"}
    schema = next(r for r in package["resources"] if r["path"] == "siae.csv")["schema"]
    names = [f["name"] for f in schema["fields"]]
    rows = list(csv.DictReader(io.StringIO((publish / "siae.csv").read_text())))
    assert list(rows[0]) == names and len(rows) == 22  # the one without a point included
    assert pq.read_table(publish / "siae.parquet").schema.names == names
    regions = json.loads((publish / "regions" / "11.geojson").read_text())
    assert [f["id"] for f in regions["features"]] == ["siae-0021"]
    assert package["rows"] == 22 and package["licenses"][0]["name"] == "etalab-2.0"


def test_files_encoded_by_several_processes_are_those_one_process_encodes(tmp_path,
                                                                          monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    for home in (one, two):
        load(home, BASE)
    publish_release(one, Publication(workers=1))
    monkeypatch.setattr("flows.publish.PARALLEL_FROM", 0)  # 22 structures: normally one
    monkeypatch.setattr("flows.publish.run_forked", _counting(forked := []))
    publish_release(two, Publication(workers=2))
    assert forked == [2]
    names = sorted(p.relative_to(one / "publish").as_posix()
                   for p in (one / "publish").rglob("*") if p.is_file())
    assert len(names) == 11
    differ = [n for n in names if (one / "publish" / n).read_bytes()
              != (two / "publish" / n).read_bytes()]
    # the change log and the package name their own release
    assert set(differ) <= {"changes.json", "datapackage.json"}
    assert json.loads((one / "publish" / "datapackage.json").read_text())["resources"] == \
        json.loads((two / "publish" / "datapackage.json").read_text())["resources"]


def _counting(calls: list):
    from flows import forked

    real = forked.run_forked

    def run(jobs, workers):
        calls.append(workers)
        return real(jobs, workers)
    return run


def test_the_datapackage_passes_frictionless_and_each_geojson_its_json_schema(tmp_path):
    import frictionless
    import jsonschema

    load(tmp_path, BASE)
    publish_release(tmp_path)
    publish = tmp_path / "publish"
    report = frictionless.validate(str(publish / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "message"])[:5]
    package = json.loads((publish / "datapackage.json").read_text())
    geojsons = [r for r in package["resources"] if r["format"] == "geojson"]
    assert len(geojsons) == 3
    for res in geojsons:
        jsonschema.validate(json.loads((publish / res["path"]).read_text()), res["jsonSchema"],
                            format_checker=jsonschema.FormatChecker())
    # the schema has teeth: a property of the wrong type, an unknown kind, a missing field
    doc = json.loads((publish / "siae.geojson").read_text())
    schema = geojsons[0]["jsonSchema"]
    for broken in ({"nom": 12}, {"types": ["XYZ"]}, {"structure_id": None}):
        bad = json.loads(json.dumps(doc))
        bad["features"][0]["properties"].update(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_the_geopackage_holds_the_located_structures_for_gis_tools(tmp_path):
    import pyogrio

    load(tmp_path, BASE)
    result = publish_release(tmp_path)
    path = tmp_path / "publish" / "siae.gpkg"
    info = pyogrio.read_info(path, layer="siae")
    assert info["features"] == result["features"] == 21  # the one without a point left out
    assert info["geometry_type"] == "Point" and "4326" in info["crs"]
    frame = pyogrio.read_dataframe(path, layer="siae")
    geojson = json.loads((tmp_path / "publish" / "siae.geojson").read_text())
    first = geojson["features"][0]
    row = frame.set_index("structure_id").loc[first["id"]]
    assert (round(row.geometry.x, 6), round(row.geometry.y, 6)) == tuple(
        first["geometry"]["coordinates"])
    assert row["types"] == "|".join(first["properties"]["types"])
    # an unchanged publication gives the same bytes: nothing new is published
    assert publish_release(tmp_path)["status"] == "unchanged"


def test_identical_input_publishes_nothing_new(tmp_path):
    load(tmp_path, BASE)
    first = publish_release(tmp_path)
    second = publish_release(tmp_path)
    assert second["status"] == "unchanged" and second["release"] == first["release"]
    assert len(list_publications(tmp_path)) == 1


def test_files_built_again_the_same_publish_nothing_new_and_leave_no_folder(tmp_path):
    load(tmp_path, BASE)
    first = publish_release(tmp_path)
    releases = tmp_path / "releases"
    (releases / ".inputs.json").unlink()  # what it was built from is no longer known
    again = publish_release(tmp_path)
    assert again["status"] == "unchanged" and again["release"] == first["release"]
    assert again["bytes"] == first["bytes"]
    assert [p.name for p in releases.iterdir() if p.is_dir()] == [first["release"]]
    # one byte of one file differing is a new release
    geojson = tmp_path / "publish" / "siae.geojson"
    geojson.write_bytes(geojson.read_bytes().replace(b"Structure 7", b"Structure 8"))
    (releases / ".inputs.json").unlink()
    assert publish_release(tmp_path)["status"] == "published"
    assert len(list_publications(tmp_path)) == 2


def test_unchanged_inputs_are_answered_without_building_a_file(tmp_path, monkeypatch):
    import flows.publish as publish

    load(tmp_path, BASE)
    first = publish_release(tmp_path)

    def no_build(*args, **kwargs):
        raise AssertionError("the files were built again")

    with monkeypatch.context() as m:
        m.setattr(publish, "write_files", no_build)
        again = publish_release(tmp_path)
    # the same report as the release's own, without reading a row
    assert again["status"] == "unchanged" and again["release"] == first["release"]
    assert {k: again[k] for k in ("features", "by_precision", "bytes", "held_back")} == \
        {k: first[k] for k in ("features", "by_precision", "bytes", "held_back")}
    # a source staged again with other content but the same published rows changes no
    # file: still answered without a build
    with connect(WarehousePaths(tmp_path).database) as con:
        con.execute("INSERT INTO ops.source_state (source, sha256, spec_fingerprint, "
                    "staged_at, run_id) VALUES ('reseau', 'another-sha', 'f', "
                    "now()::TIMESTAMP, 'r')")
    with monkeypatch.context() as m:
        m.setattr(publish, "write_files", no_build)
        assert publish_release(tmp_path)["status"] == "unchanged"
    # a missing file, a changed row or another site address: built again
    (tmp_path / "publish" / "siae.csv").unlink()
    restored = publish_release(tmp_path)
    assert restored["status"] == "published" and (tmp_path / "publish" / "siae.csv").exists()
    assert publish_release(tmp_path, link_base="https://example.org")["status"] == "published"
    load(tmp_path, BASE[:-1] + [structure(21, lon=2.36, lat=48.85, region="11")])
    assert publish_release(tmp_path, link_base="https://example.org")["status"] == "published"


def test_a_large_drop_is_refused_unless_forced(tmp_path):
    load(tmp_path, BASE)
    first = publish_release(tmp_path)
    before = (tmp_path / "publish" / "siae.geojson").read_bytes()
    load(tmp_path, BASE[:15])  # 7 of 22 structures gone: 32 %
    with pytest.raises(PublishRefused, match="15 structures against 22"):
        publish_release(tmp_path, Publication(max_drop_share=0.10))
    assert (tmp_path / "publish").resolve().name == first["release"]
    assert (tmp_path / "publish" / "siae.geojson").read_bytes() == before
    forced = publish_release(tmp_path, Publication(max_drop_share=0.10), force=True)
    assert forced["status"] == "published" and forced["changes"]["removed"] == 7


def test_changes_json_over_a_scripted_sequence(tmp_path):
    load(tmp_path, BASE)
    publish_release(tmp_path)
    # one added, one removed, one moved ~1.1 km, one moved 30 m with a new phone
    rows = [r for r in BASE if r["structure_id"] != "siae-0003"] + [structure(99)]
    rows = [structure(5, lat=44.61) if r["structure_id"] == "siae-0005" else r for r in rows]
    rows = [structure(6, lat=44.60027, telephone="+33465711234")
            if r["structure_id"] == "siae-0006" else r for r in rows]
    load(tmp_path, rows)
    result = publish_release(tmp_path)
    changes = json.loads((tmp_path / "publish" / "changes.json").read_text())
    assert changes["previous"] != changes["release"] == result["release"]
    assert [a["structure_id"] for a in changes["added"]] == ["siae-0099"]
    assert [a["structure_id"] for a in changes["removed"]] == ["siae-0003"]
    assert [(m["structure_id"], m["distance_m"]) for m in changes["moved"]] == [
        ("siae-0005", 1112)]
    assert changes["changed"] == [{"structure_id": "siae-0006", "fields": ["telephone"]}]
    assert list_publications(tmp_path)[0][4:] == (1, 1, 1, 1)


def test_older_releases_are_pruned_to_keep(tmp_path):
    for i in range(4):
        load(tmp_path, BASE + [structure(100 + i)])
        publish_release(tmp_path, Publication(keep=1))
    releases = sorted(p.name for p in (tmp_path / "releases").iterdir() if p.is_dir())
    assert len(releases) == 2
    assert (tmp_path / "publish").resolve().name == releases[-1]
    assert len(list_publications(tmp_path)) == 4


def test_a_plain_publish_folder_from_an_older_layout_is_kept_as_a_release(tmp_path):
    (tmp_path / "publish").mkdir()
    (tmp_path / "publish" / "siae.geojson").write_text("{}")
    load(tmp_path, BASE)
    publish_release(tmp_path)
    assert (tmp_path / "publish").is_symlink()
    assert any(p.name.startswith("legacy-") for p in (tmp_path / "releases").iterdir())


def test_a_place_holding_two_sirets_without_a_succession_is_never_published(tmp_path):
    from tests.helpers import record
    from transforms.fields import RECORD
    from transforms.merge import LINK_COLUMNS
    from warehouse.db import LINK_TYPES, RECORD_TYPES, replace_table

    load(tmp_path, BASE)
    first = publish_release(tmp_path)
    records = pd.DataFrame([record("a", "1", siret="34255976200048", nom="ADEF AI"),
                            record("b", "2", siret="39485379000266", nom="ADEF EI")],
                           columns=list(RECORD), dtype=object)
    links = pd.DataFrame([["siae-0001", "a", "1", "match", 0.9],
                          ["siae-0001", "b", "2", "match", 0.9]], columns=LINK_COLUMNS)
    with connect(WarehousePaths(tmp_path).database) as con:
        replace_table(con, "core.records", records, RECORD_TYPES)
        replace_table(con, "core.links", links, LINK_TYPES)
    with pytest.raises(PublishRefused, match="siae-0001 holds 34255976200048, 39485379000266"):
        publish_release(tmp_path, force=True)
    assert WarehousePaths(tmp_path).publish.resolve().name == first["release"]


def _edited(previous: list[dict]) -> list[dict]:
    """The previous release's rows with what a day brings: a name changed, a structure gone,
    one new, one that lost its point, one whose address holds a carriage return."""
    rows = [dict(r) for r in previous if r["structure_id"] != "siae-0003"]
    by_id = {r["structure_id"]: r for r in rows}
    by_id["siae-0001"]["nom"] = "Nouveau nom"
    by_id["siae-0002"].update(longitude=None, latitude=None)
    by_id["siae-0004"]["adresse"] = "1 rue du Port\rBâtiment B"
    rows.append({**by_id["siae-0005"], "structure_id": "siae-0500", "nom": "Nouvelle"})
    return sorted(rows, key=lambda r: r["structure_id"])


def test_lines_of_unchanged_rows_are_taken_from_the_previous_release(tmp_path):
    """A release built with the previous one's lines is byte for byte the one built from
    nothing; the lines really come from the previous files (an altered line stays)."""
    from flows.publish import Reuse, _datainclusion_dates, _previous_rows, write_files
    from transforms.publication import same_rows

    builds = iter(range(100))

    def built(rows, **kwargs):
        """The bytes of each file write_files writes, and its report."""
        folder = tmp_path / f"build-{next(builds)}"
        written, report = write_files(folder, rows, **kwargs)
        return {name: (folder / name).read_bytes() for name in written}, report

    load(tmp_path, BASE)
    publish_release(tmp_path)
    release = (tmp_path / "publish").resolve()
    previous = _previous_rows(release)
    rows = _edited(previous)
    same = frozenset(same_rows(previous, rows))
    assert len(same) == len(previous) - 4  # the edited, the gone, the moved, the address
    dates = _datainclusion_dates(WarehousePaths(tmp_path), release)
    assert len(dates) == len(previous)  # every row was written without a refusal
    reuse = Reuse(release, [r["structure_id"] for r in previous], same, dates)
    fresh, report = built(rows)
    assert built(rows, reuse=reuse) == (fresh, report)

    names = ("siae.geojson", "siae.csv", "datainclusion/structures.json",
             "datainclusion/structures.csv")
    altered = tmp_path / "altered"
    (altered / "datainclusion").mkdir(parents=True)
    for name in names:
        text = (release / name).read_text(encoding="utf-8")
        (altered / name).write_text(text.replace(
            "Structure 7", "Structure sept"), encoding="utf-8")
    kept, _ = built(rows, reuse=Reuse(altered, reuse.ids, same, dates))
    for name in names:
        assert "Structure sept" in kept[name].decode() and kept[name] != fresh[name], name
    # an edited row is never taken from the previous file, nor a row dated otherwise now
    edited = Reuse(altered, reuse.ids, same - {"siae-0007"}, dates)
    assert built(rows, reuse=edited)[0] == fresh
    redated = Reuse(altered, reuse.ids, same, {**dates, "siae-0007": "2020-01-01"})
    files = built(rows, reuse=redated)[0]
    assert "Structure sept" not in files["datainclusion/structures.json"].decode()
    assert files["datainclusion/structures.csv"] == fresh["datainclusion/structures.csv"]


def test_previous_lines_serve_only_files_encoded_the_same_way(tmp_path, monkeypatch):
    """Another link_base, another version of the code (the stored code differs): every line
    is encoded again."""
    import flows.publish as publish

    seen = []
    real = publish.write_files

    def spy(*args, **kwargs):
        seen.append(args[5] if len(args) > 5 else kwargs.get("reuse"))
        return real(*args, **kwargs)

    monkeypatch.setattr(publish, "write_files", spy)
    load(tmp_path, BASE)
    publish_release(tmp_path)
    load(tmp_path, BASE[:-1] + [structure(21, lon=2.36, lat=48.85, region="11", nom="Autre")])
    publish_release(tmp_path)
    load(tmp_path, BASE)
    publish_release(tmp_path, link_base="https://example.org")
    inputs = tmp_path / "releases" / ".inputs.json"
    stored = json.loads(inputs.read_text())
    inputs.write_text(json.dumps({**stored, "code": "an older version"}))
    load(tmp_path, BASE[:-1] + [structure(21, lon=2.36, lat=48.85, region="11", nom="Autre")])
    publish_release(tmp_path, link_base="https://example.org")
    assert seen[0] is None and seen[2] is None and seen[3] is None
    assert seen[1] is not None and "siae-0021" not in seen[1].same
    assert len(seen[1].same) == 21


def test_csv_lines_pair_with_rows_only_without_line_breaks_in_cells():
    from transforms.publication import csv_bytes, csv_lines_by_id

    rows = [{"structure_id": "siae-1", "nom": "A"}, {"structure_id": "siae-2", "nom": "B\r"}]
    data = csv_bytes(rows)
    lines = csv_lines_by_id(data, ["siae-1", "siae-2"])
    assert lines["siae-2"].startswith('"siae-2"') and csv_bytes(rows, lines) == data
    broken = rows + [{"structure_id": "siae-3", "nom": "deux\nlignes"}]
    assert csv_lines_by_id(csv_bytes(broken), ["siae-1", "siae-2", "siae-3"]) == {}


def test_geojson_files_written_a_feature_at_a_time_are_the_collections_in_memory(tmp_path):
    """The national and régions' files, streamed to disk, hold the bytes collection_bytes
    gives for the sorted features, with their size and digest."""
    from flows.publish import _geojson_files, _written
    from transforms.geojson import collection_bytes, feature_line

    rows = [structure(n, lon=2.0 + n / 100, lat=45.0, region="84" if n % 3 else "11")
            for n in (7, 3, 12, 1, 9)]  # not in structure_id order
    rows.append(structure(20, lon=None, lat=None, region="93"))  # no point: an empty région
    rows.append(structure(21, lon=5.0, lat=43.0, region=None))  # on the national map only
    out, _ = _written(lambda: _geojson_files(rows, None, tmp_path), tmp_path)
    located = sorted((r for r in rows if r["longitude"] is not None),
                     key=lambda r: r["structure_id"])
    expected = {"siae.geojson": collection_bytes(feature_line(r) for r in located)}
    for region in ("11", "84", "93"):
        expected[f"regions/{region}.geojson"] = collection_bytes(
            feature_line(r) for r in located if r["region"] == region)
    assert set(out) == set(expected)
    for name, data in expected.items():
        assert (tmp_path / name).read_bytes() == data, name
        assert (out[name].size, out[name].sha256) == (len(data),
                                                      hashlib.sha256(data).hexdigest())
    assert json.loads(expected["regions/93.geojson"])["features"] == []


def test_a_failing_feature_leaves_the_files_closed_and_the_error_raised(tmp_path,
                                                                        monkeypatch):
    import flows.publish

    def broken(row):
        raise RuntimeError(f"cannot encode {row['structure_id']}")

    monkeypatch.setattr(flows.publish, "feature_line", broken)
    with pytest.raises(RuntimeError, match="cannot encode"):
        flows.publish._geojson_files([structure(1, lon=2.0, lat=45.0, region="84")], None,
                                     tmp_path)


@pytest.mark.parametrize("case", ["rows", "all left out"])
def test_datainclusion_files_written_a_row_at_a_time_are_the_export_in_memory(tmp_path,
                                                                              case):
    """structures.json and .csv streamed to disk, from rows in any order, hold the bytes,
    report and reusable dates of the in-memory export (a row left out, a value emptied, a
    carriage return; no row at all: an empty array and the header)."""
    from flows.publish import _datainclusion_files, _written
    from tests.unit.test_datainclusion_export import CHANGED, _day_rows
    from transforms import datainclusion_export as di

    rows = list(reversed(_day_rows()))
    if case == "all left out":
        rows = [r | {"nom": "AB"} for r in rows]
    out, (report, clean) = _written(
        lambda: _datainclusion_files(rows, "https://atlas.example", CHANGED, None, tmp_path),
        tmp_path)
    json_data, csv_data, expected_report, expected_clean = di.export_files(
        rows, "https://atlas.example", CHANGED)
    assert (report, clean) == (expected_report, expected_clean)
    for name, data in (("datainclusion/structures.json", json_data),
                       ("datainclusion/structures.csv", csv_data)):
        assert (tmp_path / name).read_bytes() == data, name
        assert out[name].sha256 == hashlib.sha256(data).hexdigest()
    if case == "all left out":
        assert json_data == b"[]\n" and csv_data.count(b"\n") == 1
