"""The sync flow end to end on the demo samples, under a temporary Prefect server."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from flows.sync import sync
from tests.conftest import SHARED

pytestmark = pytest.mark.usefixtures("prefect_server")

# The mess put into the samples on purpose (scripts/make_samples.py, samples/README.md).
EXPECTED_REJECTS = {
    ("reseau_iae_aura", "nom_manquant"): 1,
    ("reseau_iae_aura", "siret_invalide"): 1,
    ("reseau_iae_aura", "type_inconnu"): 1,
    ("dreets_aura", "siret_invalide"): 1,
    ("emplois_aura", "type_hors_perimetre"): 1,
}


def query(home: Path, sql: str, params=None):
    con = duckdb.connect(str(home / "siae.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def run(demo: Path, home: Path, **kw):
    return sync(str(demo / "sources.toml"), home=str(home), **kw)


def check_geojson(path: Path) -> int:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if (SHARED / "tools" / "check_geojson.py").exists():
        out = subprocess.run(
            [sys.executable, str(SHARED / "tools" / "check_geojson.py"), str(path)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout
    return len(doc["features"])


def test_demo_merges_rejects_locates_and_publishes(demo, tmp_path):
    home = tmp_path / "wh"
    summary = run(demo, home)
    statuses = {(s.step, s.source): s.status for s in summary.steps}
    assert set(statuses.values()) == {"ok"}, statuses

    rejects = Counter(
        query(home, "SELECT source, reason FROM ops.rejects WHERE run_id = ?", [summary.run_id])
    )
    assert dict(rejects) == EXPECTED_REJECTS

    # one structure per SIRET, whatever the number of sources carrying it
    sirets = query(
        home,
        "SELECT siret, count(*) FROM core.structures WHERE siret IS NOT NULL "
        "GROUP BY siret HAVING count(*) > 1",
    )
    assert sirets == []
    distinct = query(
        home,
        "SELECT count(DISTINCT siret) FROM core.records "
        "WHERE NOT regexp_matches(siret, '999[0-9]{2}$')",
    )[0][0]
    unkeyed = query(
        home,
        "SELECT count(*) FROM core.records "
        "WHERE siret IS NULL OR regexp_matches(siret, '999[0-9]{2}$')",
    )[0][0]
    assert summary.structures == distinct + unkeyed
    multi = query(home, "SELECT count(*) FROM core.structures WHERE len(sources) >= 2")[0][0]
    assert multi >= 10
    # kinds are united across sources (the DREETS file adds ETTI to one ACI)
    assert (
        query(home, "SELECT count(*) FROM core.structures WHERE types = ['ACI', 'ETTI']")[0][0] == 1
    )
    # the antenne with a placeholder SIRET stays its own place
    antenne = query(home, "SELECT sources FROM core.structures WHERE siret LIKE '%99901'")
    assert antenne == [(["emplois_aura"],)]

    # points: swapped and 0,0 coordinates refused, the commune centre used instead
    refused = query(
        home, "SELECT geo_precision, geo_refused FROM core.structures WHERE len(geo_refused) > 0"
    )
    assert len(refused) == 2 and {p for p, _ in refused} == {"municipality"}
    precision = dict(
        query(home, "SELECT geo_precision, count(*) FROM core.structures GROUP BY ALL")
    )
    assert precision["source"] > 0 and precision["municipality"] > 0

    assert check_geojson(home / "publish" / "siae.geojson") == summary.features
    assert summary.features + summary.without_coordinates == summary.structures
    steps = query(
        home, "SELECT step, source, status FROM ops.runs WHERE run_id = ?", [summary.run_id]
    )
    assert ("publish", None, "ok") in steps and len(steps) == len(summary.steps)


def test_rerun_is_byte_identical_costs_no_staging_and_keeps_ids(demo, tmp_path):
    home = tmp_path / "wh"
    run(demo, home)
    first = (home / "publish" / "siae.geojson").read_bytes()
    ids = query(home, "SELECT identity_key, structure_id FROM core.structures ORDER BY 1")
    second = run(demo, home)
    assert (home / "publish" / "siae.geojson").read_bytes() == first
    assert query(home, "SELECT identity_key, structure_id FROM core.structures ORDER BY 1") == ids
    assert {s.status for s in second.steps if s.step == "stage"} == {"unchanged"}


def test_ids_do_not_depend_on_the_order_of_sources(demo, tmp_path):
    run(demo, tmp_path / "a")
    text = (demo / "sources.toml").read_text(encoding="utf-8")
    head, *blocks = text.split("\n[sources.")
    # put the sources in reverse order (each block keeps its sub-tables)
    reordered = head + "".join("\n[sources." + b for b in reversed(_source_groups(blocks)))
    (demo / "sources.toml").write_text(reordered, encoding="utf-8")
    run(demo, tmp_path / "b")
    sql = "SELECT identity_key, structure_id FROM core.structures ORDER BY 1"
    assert query(tmp_path / "a", sql) == query(tmp_path / "b", sql)
    assert (tmp_path / "a" / "publish" / "siae.geojson").read_bytes() == (
        tmp_path / "b" / "publish" / "siae.geojson"
    ).read_bytes()


def _source_groups(blocks: list[str]) -> list[str]:
    groups: list[str] = []
    for b in blocks:
        name = b.split("]", 1)[0]
        if "." in name and groups:
            groups[-1] += "\n[sources." + b
        else:
            groups.append(b)
    return groups


def test_a_broken_source_fails_alone_and_keeps_its_last_good_data(demo, tmp_path):
    home = tmp_path / "wh"
    before = run(demo, home)
    (demo / "dreets_aura.xlsx").write_bytes(b"\x00garbage\xff" * 100)
    after = run(demo, home)
    failed = [s for s in after.steps if s.status == "failed"]
    assert [(s.step, s.source) for s in failed] == [("stage", "dreets_aura")]
    assert "source 'dreets_aura'" in failed[0].message and "XLSX" in failed[0].message
    assert after.failed_sources == ["dreets_aura"]
    assert after.published and after.structures == before.structures
    assert query(home, "SELECT count(*) FROM core.records WHERE source = 'dreets_aura'")[0][0] > 0
    assert check_geojson(home / "publish" / "siae.geojson") == before.features
    assert query(
        home,
        "SELECT status FROM ops.runs WHERE run_id = ? AND source = "
        "'dreets_aura' AND step = 'stage'",
        [after.run_id],
    ) == [("failed",)]


def test_a_source_below_min_rows_fails_and_a_missing_file_too(demo, tmp_path):
    home = tmp_path / "wh"
    text = (demo / "sources.toml").read_text(encoding="utf-8")
    (demo / "sources.toml").write_text(
        text.replace("min_rows = 5", "min_rows = 35"), encoding="utf-8"
    )
    (demo / "emplois_aura.json").unlink()
    summary = run(demo, home)
    by = {(s.step, s.source): s for s in summary.steps}
    assert by[("fetch", "emplois_aura")].status == "failed"
    assert "no file matches" in by[("fetch", "emplois_aura")].message
    assert by[("stage", "reseau_iae_aura")].status == "failed"
    assert "fewer than expect.min_rows = 35" in by[("stage", "reseau_iae_aura")].message
    assert by[("stage", "dreets_aura")].status == "failed"  # 24 usable rows < 35
    assert not summary.published
    assert not (home / "publish" / "siae.geojson").exists()


def test_an_http_source_is_fetched_from_a_local_server(demo, tmp_path, httpserver):
    httpserver.expect_request("/reseau.csv").respond_with_data(
        (demo / "reseau_iae_aura.csv").read_bytes(), content_type="text/csv"
    )
    text = (demo / "sources.toml").read_text(encoding="utf-8")
    text = text.replace(
        'kind = "file"\npath = "reseau_iae_aura*.csv"',
        f'kind = "http"\nurl = "{httpserver.url_for("/reseau.csv")}"',
    )
    (demo / "sources.toml").write_text(text, encoding="utf-8")
    summary = run(demo, tmp_path / "wh", only=["reseau_iae_aura"])
    stage = next(s for s in summary.steps if s.step == "stage")
    assert (stage.status, stage.rows_out) == ("ok", 30)
    fetched = query(tmp_path / "wh", "SELECT location, status FROM raw.fetches")
    assert fetched == [(httpserver.url_for("/reseau.csv"), "ok")]
    assert summary.published
