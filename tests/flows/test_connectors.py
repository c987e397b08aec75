"""Connectors against a local HTTP server speaking the real contracts (SOURCES.md)."""

import io
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from werkzeug import Response

from flows.connectors import fetch_asp, newest_export, pick_resource
from flows.fetch import FetchError, fetch_payloads
from transforms.apis import datainclusion_table, emplois_table, recherche_entreprises_table
from transforms.spec import parse_spec

UA = "SIAE-Atlas/test"


def spec_of(kind: str, **keys):
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    text = f'[sources.src]\nkind = "{kind}"\nretries = 2\ntimeout = 5\n{lines}'
    return parse_spec(text, Path("/tmp/sources.toml")).sources["src"]


def company(siret, name="SIAE"):
    etab = {"siret": siret, "code_postal": "07200", "commune": "07019",
            "libelle_commune": "AUBENAS", "libelle_voie": "RUE NEUVE",
            "latitude": "44.6", "longitude": "4.39", "etat_administratif": "A"}
    return {"siren": siret[:9], "nom_complet": name, "siege": etab,
            "matching_etablissements": [etab],
            "complements": {"est_siae": True, "type_siae": "ACI"}}


def search_page(results, page, total_pages):
    return {"results": results, "total_results": 3, "page": page, "per_page": 25,
            "total_pages": total_pages}


def q(dep, page):
    return {"est_siae": "true", "departement": dep, "page": str(page), "per_page": "25",
            "limite_matching_etablissements": "100"}


def test_recherche_entreprises_pages_departements_and_rides_out_429_and_500(httpserver):
    expect = httpserver.expect_ordered_request
    expect("/search", query_string=q("01", 1)).respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "1"}))
    expect("/search", query_string=q("01", 1)).respond_with_json(
        search_page([company("19070916200019")], 1, 2))
    expect("/search", query_string=q("01", 2)).respond_with_data("oops", status=500)
    expect("/search", query_string=q("01", 2)).respond_with_json(
        search_page([company("42385519600014")], 2, 2))
    expect("/search", query_string=q("2A", 1)).respond_with_json(
        search_page([company("35600000000048")], 1, 1))
    spec = spec_of("recherche_entreprises", base_url=httpserver.url_for("/"),
                   departements=["01", "2A"], rate_per_second=50)
    t0 = time.perf_counter()
    (payload,) = fetch_payloads(spec, UA)
    assert time.perf_counter() - t0 >= 0.9  # Retry-After honoured
    httpserver.check_assertions()
    assert len(httpserver.log) == 5
    assert all(req.headers["User-Agent"] == UA for req, _ in httpserver.log)
    sirets = [r[1] for r in recherche_entreprises_table(payload.data).rows]
    assert sirets == ["19070916200019", "35600000000048", "42385519600014"]


def test_recherche_entreprises_rate_limit_spaces_requests(httpserver):
    httpserver.expect_request("/search").respond_with_json(search_page([], 1, 1))
    spec = spec_of("recherche_entreprises", base_url=httpserver.url_for("/"),
                   departements=["01", "02", "03", "04"], rate_per_second=5)
    t0 = time.perf_counter()
    fetch_payloads(spec, UA)
    assert time.perf_counter() - t0 >= 0.6  # 4 requests at 5/s: 3 intervals of 0.2 s


@pytest.mark.parametrize(
    ("respond", "message"),
    [
        (lambda h: h.respond_with_data("<html>Maintenance</html>", content_type="text/html"),
         "did not return JSON"),
        (lambda h: h.respond_with_json({"erreur": "x"}), "no 'results'"),
        (lambda h: h.respond_with_data("gone", status=404), "HTTP 404"),
    ],
    ids=["html-page-with-200", "missing-field", "error-status"],
)
def test_recherche_entreprises_broken_answers_fail_the_source(httpserver, respond, message):
    respond(httpserver.expect_request("/search"))
    spec = spec_of("recherche_entreprises", base_url=httpserver.url_for("/"),
                   departements=["01"], rate_per_second=50)
    with pytest.raises(FetchError, match=f"source 'src'.*{message}"):
        fetch_payloads(spec, UA)


def emplois_item(i):
    return {"id": i, "siret": "19070916200019", "type": "ACI", "raison_sociale": f"S{i}",
            "addresse_ligne_1": "3 rue Neuve", "code_postal": "07200", "ville": "Aubenas"}


def test_emplois_follows_next_links_per_departement(httpserver):
    nxt = httpserver.url_for("/api/v1/siaes/") + "?departement=07&page=2&page_size=100"
    httpserver.expect_request(
        "/api/v1/siaes/", query_string={"departement": "07", "page_size": "100"}
    ).respond_with_json({"count": 3, "next": nxt, "previous": None,
                         "results": [emplois_item(1), emplois_item(2)]})
    httpserver.expect_request(
        "/api/v1/siaes/", query_string={"departement": "07", "page": "2", "page_size": "100"}
    ).respond_with_json({"count": 3, "next": None, "previous": None,
                         "results": [emplois_item(3)]})
    httpserver.expect_request(
        "/api/v1/siaes/", query_string={"departement": "26", "page_size": "100"}
    ).respond_with_json({"count": 0, "next": None, "previous": None, "results": []})
    spec = spec_of("emplois", base_url=httpserver.url_for("/"), departements=["07", "26"],
                   rate_per_minute=6000)
    (payload,) = fetch_payloads(spec, UA)
    assert len(httpserver.log) == 3
    assert [r[2] for r in emplois_table(payload.data).rows] == ["S1", "S2", "S3"]


def test_emplois_with_token_uses_the_data_inclusion_endpoint(httpserver, monkeypatch):
    monkeypatch.setenv("EMPLOIS_TOKEN", "tok-123")
    httpserver.expect_request(
        "/api/v1/data-inclusion/", query_string={"type": "siae"},
        headers={"Authorization": "Token tok-123"},
    ).respond_with_json({"count": 1, "next": None, "results": [
        {**emplois_item(1), "latitude": 44.6, "longitude": 4.39}]})
    spec = spec_of("emplois", base_url=httpserver.url_for("/"), token_env="EMPLOIS_TOKEN",
                   rate_per_minute=6000)
    (payload,) = fetch_payloads(spec, UA)
    assert b"tok-123" not in payload.data and "tok-123" not in payload.location
    row = dict(zip(emplois_table(payload.data).columns, emplois_table(payload.data).rows[0],
                   strict=True))
    assert row["latitude"] == "44.6"


def parquet_bytes():
    buf = io.BytesIO()
    pd.DataFrame({"id": ["a--1"], "nom": ["Atelier"], "reseaux_porteurs": [["aci"]],
                  "siret": ["19070916200019"], "code_postal": ["07200"],
                  "commune": ["Aubenas"]}).to_parquet(buf)
    return buf.getvalue()


def test_datainclusion_resolves_the_newest_resource_and_downloads_it(httpserver):
    url = httpserver.url_for
    resources = [
        {"title": "structures-inclusion-2026-10-26", "format": "parquet",
         "url": url("/old.parquet")},
        {"title": "structures-inclusion-2026-11-02", "format": "csv", "url": url("/new.csv")},
        {"title": "structures-inclusion-2026-11-02", "format": "parquet",
         "url": url("/files/structures-inclusion-2026-11-02.parquet")},
        {"title": "services-inclusion-2026-11-09", "format": "parquet", "url": url("/s")},
    ]
    httpserver.expect_request("/api/1/datasets/6233723c2c1e4a54af2f6b2d/").respond_with_json(
        {"id": "6233723c2c1e4a54af2f6b2d", "resources": resources})
    httpserver.expect_request("/files/structures-inclusion-2026-11-02.parquet"
                              ).respond_with_data(parquet_bytes(),
                                                  content_type="application/octet-stream")
    spec = spec_of("datainclusion", base_url=httpserver.url_for("/"))
    (payload,) = fetch_payloads(spec, UA)
    assert payload.name == "structures-inclusion-2026-11-02.parquet"
    assert datainclusion_table(payload.data, "parquet").rows[0][2] == "Atelier"


def test_datainclusion_without_a_structures_resource_fails(httpserver):
    httpserver.expect_request("/api/1/datasets/6233723c2c1e4a54af2f6b2d/").respond_with_json(
        {"resources": [{"title": "services-inclusion-2026-11-09", "format": "csv",
                        "url": "x"}]})
    with pytest.raises(FetchError, match="no structures-inclusion-YYYY-MM-DD"):
        fetch_payloads(spec_of("datainclusion", base_url=httpserver.url_for("/")), UA)


def test_pick_resource_prefers_parquet_on_the_same_date():
    res = [{"title": "structures-inclusion-2026-11-02", "format": "csv", "url": "c"},
           {"title": "structures-inclusion-2026-11-02", "format": "parquet", "url": "p"}]
    assert pick_resource(res)["url"] == "p"
    assert pick_resource([]) is None


def test_asp_newest_export_by_the_stamp_in_the_name(tmp_path):
    for name in ("fluxIAE_Structure_31122025_235959.csv", "fluxIAE_Structure_02112026_063000.csv",
                 "fluxIAE_AnnexeFinanciere_02112026_063000.csv"):
        (tmp_path / name).write_text(name)
    assert newest_export(sorted(tmp_path.glob("fluxIAE_Structure_*"))).name == (
        "fluxIAE_Structure_02112026_063000.csv")
    spec = parse_spec(
        '[sources.asp]\nkind = "asp_fluxiae"\npath = "fluxIAE_Structure_*.csv"\n'
        'annexes_path = "fluxIAE_AnnexeFinanciere_*.csv"\n', tmp_path / "sources.toml"
    ).sources["asp"]
    assert [p.name for p in fetch_asp(spec)] == ["fluxIAE_Structure_02112026_063000.csv",
                                                 "fluxIAE_AnnexeFinanciere_02112026_063000.csv"]


def test_the_default_sources_file_fetches_every_public_source(httpserver):
    """The repository's sources.toml, its base URLs pointed at the local server."""

    from transforms.spec import load_spec

    httpserver.expect_request("/search").respond_with_json(
        search_page([company("19070916200019")], 1, 1))
    httpserver.expect_request("/api/v1/siaes/").respond_with_json(
        {"count": 1, "next": None, "previous": None, "results": [emplois_item(1)]})
    httpserver.expect_request("/api/1/datasets/6233723c2c1e4a54af2f6b2d/").respond_with_json(
        {"resources": [{"title": "structures-inclusion-2026-11-02", "format": "parquet",
                        "url": httpserver.url_for("/f.parquet")}]})
    httpserver.expect_request("/f.parquet").respond_with_data(parquet_bytes())
    spec = load_spec(Path(__file__).resolve().parents[2] / "sources.toml")
    api = [s for s in spec.sources.values()
           if s.kind in ("recherche_entreprises", "emplois", "datainclusion")]
    assert {s.kind for s in api} == {"recherche_entreprises", "emplois", "datainclusion"}
    for s in api:
        local = s.model_copy(update=dict(base_url=httpserver.url_for("/"),
                                         departements=("07",), rate_per_second=50,
                                         rate_per_minute=6000))
        (payload,) = fetch_payloads(local, UA)
        assert payload.data
    assert {s.kind for s in spec.sources.values()} >= {"asp_fluxiae", "file"}
