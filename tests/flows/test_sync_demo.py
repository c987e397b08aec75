"""The sync flow end to end on the demo samples, under a temporary Prefect server."""

from collections import Counter
from pathlib import Path

import pytest

from flows.sync import sync
from tests.helpers import ban_handler, check_geojson, query, run_summary

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("prefect_server")

# The mess put into the samples on purpose (scripts/make_samples.py, samples/README.md).
EXPECTED_REJECTS = {
    ("reseau_iae_aura", "nom_manquant"): 1,
    ("reseau_iae_aura", "type_inconnu"): 1,
    ("emplois_aura", "type_hors_perimetre"): 1,
    ("asp_fluxiae", "type_manquant"): 1,  # its only annex has expired
}


def run(demo: Path, home: Path, **kw):
    return run_summary(sync, str(demo / "sources.toml"), home=str(home), **kw)


def test_demo_merges_rejects_locates_and_publishes(demo, tmp_path):
    home = tmp_path / "wh"
    summary = run(demo, home)
    assert summary.geocoding_requests >= 1
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
    # records without a usable SIRET are places of their own unless the matcher merged them
    alone = query(home, "SELECT count(*) FROM core.links WHERE rule = 'source_record'")[0][0]
    matched = query(home, "SELECT count(*) FROM core.links WHERE rule = 'match'")[0][0]
    assert summary.structures == distinct + alone and matched >= 1
    multi = query(home, "SELECT count(*) FROM core.structures WHERE len(sources) >= 2")[0][0]
    assert multi >= 10
    # kinds are united across sources (the DREETS file adds ETTI to one ACI)
    assert (
        query(home, "SELECT count(*) FROM core.structures WHERE types = ['ACI', 'ETTI']")[0][0] == 1
    )
    # a closed establishment (SIRENE) stays in the warehouse but is not published
    closed = query(home, "SELECT structure_id FROM core.structures WHERE etat_administratif = 'F'")
    assert len(closed) == 1 and summary.closed == 1
    assert closed[0][0] not in (home / "publish" / "siae.geojson").read_text(encoding="utf-8")
    # an antenne (same SIREN, its own SIRET) is a place of its own
    sirens = query(home, "SELECT siren FROM core.structures GROUP BY siren HAVING count(*) > 1")
    assert len(sirens) >= 1
    # the antenne with a placeholder SIRET stays its own place
    antenne = query(home, "SELECT sources FROM core.structures WHERE siret LIKE '%99901'")
    assert antenne == [(["emplois_aura"],)]

    # swapped and 0,0 coordinates refused: another source's point or the commune centre wins
    refused = query(
        home, "SELECT geo_source, geo_refused FROM core.structures WHERE len(geo_refused) > 0"
    )
    assert len(refused) == 2
    assert all(src != "dreets_aura" and why[0].startswith("dreets_aura") for src, why in refused)
    # ...and flagged for review, with the source and why
    flagged = query(home, "SELECT source, reason, distance_km FROM ops.geo_disagreements "
                          "WHERE run_id = ? AND distance_km IS NULL", [summary.run_id])
    assert len(flagged) == 2 and {src for src, _, _ in flagged} == {"dreets_aura"}
    precision = dict(
        query(home, "SELECT geo_precision, count(*) FROM core.structures GROUP BY ALL")
    )
    assert precision["source"] > 0 and precision["municipality"] > 0
    # les emplois' positions, each with the structure its record belongs to
    postes = query(home, "SELECT p.structure_id, l.structure_id FROM core.postes p LEFT JOIN "
                         "core.links l USING (source, source_id)")
    assert postes and all(mine is not None and mine == linked for mine, linked in postes)

    assert check_geojson(home / "publish" / "siae.geojson") == summary.features
    assert summary.features + summary.without_coordinates + summary.closed + \
        summary.unconfirmed == summary.structures
    steps = query(
        home, "SELECT step, source, status FROM ops.runs WHERE run_id = ?", [summary.run_id]
    )
    assert ("publish", None, "ok") in steps and ("run", None, "ok") in steps
    assert len(steps) == len(summary.steps) + 1  # the steps, and the run's own row

    # completeness per source, on the merged records
    completude = {row[0]: row[1:] for row in query(
        home, "SELECT source, enregistrements, part_siret, part_coordonnees FROM "
              "marts.sources_completude")}
    kept = {s.source: s.rows_out for s in summary.steps if s.step == "stage"}
    assert {k: v[0] for k, v in completude.items()} == kept
    assert completude["annuaire_entreprises"][1:] == (1.0, 1.0)  # SIRENE: SIRET and point
    assert completude["reseau_iae_aura"][1] < 1.0  # a row without SIRET
    # analysts find every table of the warehouse documented in the README
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tables = query(home, "SELECT schema_name || '.' || table_name FROM duckdb_tables() UNION "
                         "SELECT schema_name || '.' || view_name FROM duckdb_views() "
                         "WHERE NOT internal")
    undocumented = sorted(t for (t,) in tables if not t.startswith("staging.")
                          and not t.endswith("_migrating") and f"`{t}`" not in readme)
    assert undocumented == []
    # ...and in DuckDB itself
    uncommented = query(home, "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                              "WHERE comment IS NULL AND table_name NOT LIKE '%_migrating' "
                              "UNION SELECT schema_name || '.' || view_name FROM duckdb_views() "
                              "WHERE NOT internal AND comment IS NULL")
    assert uncommented == []
    # every column of every mart says what it holds
    columns = query(home, "SELECT table_name, column_name, comment FROM duckdb_columns() "
                          "WHERE schema_name = 'marts'")
    assert {t for t, _, _ in columns} >= {"siae", "publications", "doublons_a_verifier",
                                           "siae_changes", "sources_completude"}
    assert [(t, c) for t, c, comment in columns if not comment] == []


def test_rerun_is_byte_identical_costs_no_staging_and_keeps_ids(demo, tmp_path):
    home = tmp_path / "wh"
    first_summary = run(demo, home)
    first = (home / "publish" / "siae.geojson").read_bytes()
    ids = query(home, "SELECT identity_key, structure_id FROM core.structures ORDER BY 1")
    second = run(demo, home)
    assert (home / "publish" / "siae.geojson").read_bytes() == first
    assert query(home, "SELECT identity_key, structure_id FROM core.structures ORDER BY 1") == ids
    assert {s.status for s in second.steps if s.step == "stage"} == {"unchanged"}
    # nothing the consolidation reads changed: no merge, no geocoding, the same publication;
    # the analysts' snapshot is still refreshed, since the run history it holds grew
    steps = {s.step: s.status for s in second.steps if s.source is None}
    assert steps == {"prepare": "ok", "consolidate": "unchanged", "publish": "unchanged",
                     "snapshot": "ok"}
    assert second.geocoding_requests == 0
    assert (second.structures, second.features) == (first_summary.structures,
                                                    first_summary.features)
    assert second.published_by_precision["housenumber"] > 0
    # a changed setting is a changed input
    toml = demo / "sources.toml"
    assert "[matching]" not in toml.read_text(encoding="utf-8")
    with toml.open("a", encoding="utf-8") as fh:
        fh.write("\n[matching]\nreview_threshold = 0.61\n")
    third = run(demo, home)
    assert "merge" in {s.step for s in third.steps}
    assert query(home, "SELECT identity_key, structure_id FROM core.structures ORDER BY 1") == ids


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
    data_lines = (demo / "reseau_iae_aura.csv").read_bytes().decode("cp1252").splitlines()[3:]
    assert stage.status == "ok" and stage.rows_in == len([ln for ln in data_lines if ln])
    assert stage.rows_out == stage.rows_in - stage.rejected
    fetched = query(tmp_path / "wh", "SELECT location, status FROM raw.fetches")
    assert fetched == [(httpserver.url_for("/reseau.csv"), "ok")]
    assert summary.published


def test_public_api_sources_through_the_flow(tmp_path, httpserver):
    def etab(siret, lat, lon):
        return {"siret": siret, "numero_voie": "3", "libelle_voie": "RUE NEUVE",
                "code_postal": "07200", "commune": "07019", "libelle_commune": "AUBENAS",
                "latitude": lat, "longitude": lon, "etat_administratif": "A"}

    companies = [
        {"siren": s[:9], "nom_complet": f"SIAE {s}", "siege": etab(s, "44.62", "4.39"),
         "matching_etablissements": [etab(s, "44.62", "4.39")],
         "complements": {"est_siae": True, "type_siae": "ACI, EI"}}
        for s in ("19070916200019", "42385519600014")
    ]
    httpserver.expect_request("/search").respond_with_json(
        {"results": companies, "total_results": 2, "page": 1, "per_page": 25,
         "total_pages": 1})
    httpserver.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    httpserver.expect_request("/api/v1/siaes/").respond_with_json(
        {"count": 1, "next": None, "previous": None, "results": [
            {"id": 7, "siret": "19070916200019", "type": "ETTI", "raison_sociale": "Atelier",
             "addresse_ligne_1": "3 rue Neuve", "code_postal": "07200", "ville": "Aubenas"}]})
    base = httpserver.url_for("/")
    (tmp_path / "sources.toml").write_text(f"""
[sources.annuaire]
kind = "recherche_entreprises"
base_url = "{base}"
departements = ["07"]
rate_per_second = 50
[sources.emplois]
kind = "emplois"
base_url = "{base}"
departements = ["07"]
rate_per_minute = 6000
priority = 60
[geocoder]
base_url = "{base}geocodage"
""", encoding="utf-8")
    summary = run_summary(sync, str(tmp_path / "sources.toml"), home=str(tmp_path / "wh"))
    assert {s.status for s in summary.steps} == {"ok"}
    assert summary.structures == 2 and summary.features == 2
    assert summary.published_by_precision == {"housenumber": 2}  # the local BAN's answers
    merged = query(tmp_path / "wh", "SELECT nom, types, sources FROM core.structures "
                                    "WHERE siret = '19070916200019'")
    assert merged == [("Atelier", ["ACI", "EI", "ETTI"], ["annuaire", "emplois"])]


def test_keep_raw_prunes_old_payloads_but_never_the_one_behind_the_staging(demo, tmp_path):
    toml = demo / "sources.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[defaults]\n", "[defaults]\nkeep_raw = 1\n", 1), encoding="utf-8")
    home = tmp_path / "wh"
    csv = demo / "reseau_iae_aura.csv"
    raw = home / "raw" / "reseau_iae_aura"
    run(demo, home)
    for edit in (b"04 65 71 00 70", b"04 65 71 00 79"):  # two new versions of the file
        text = csv.read_bytes()
        csv.write_bytes(text.replace(text.split(b"\n")[3].split(b";")[7], edit, 1))
        run(demo, home)
    # only the latest payload is left (beside the manifests of the fetches)
    assert len([p for p in raw.iterdir() if p.is_file()]) == 1
    assert query(home, "SELECT count(*) FROM raw.pruned WHERE source = 'reseau_iae_aura'") == [
        (2,)]
    good = next(p for p in raw.iterdir() if p.is_file())
    csv.write_bytes(b"not;a;usable\nfile")  # fetched and landed, but its staging fails
    broken = run(demo, home)
    assert "reseau_iae_aura" in broken.failed_sources
    assert good.exists()  # the payload behind the staging still in use stays
    assert len([p for p in raw.iterdir() if p.is_file()]) == 2
