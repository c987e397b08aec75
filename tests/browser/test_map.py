"""The reference map page in real headless Chromium, offline, on a small publication."""

import json
import shutil
import time
from pathlib import Path

import pytest
import shapely
from shapely.geometry import box

from flows.mapserver import make_server, serve_in_thread
from flows.publish import publish_release
from tests.helpers import load, structure
from warehouse.db import connect
from warehouse.paths import WarehousePaths

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (apt-get install "
                                       "chromium); .ci/run installs it")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

KINDS = [["ACI"], ["AI"], ["EI", "ETTI"], ["ETTI"], ["ACI", "EI"]]
ROWS = (
    [structure(i, lon=4.8 + i * 0.01, lat=45.7 + i * 0.01, types=KINDS[i % 5],
               departement="69", commune="Lyon", telephone="+33465711234",
               site_web="https://exemple.example") for i in range(12)]
    + [structure(20 + i, lon=5.7 + i * 0.01, lat=45.2, types=KINDS[i % 5], departement="38",
                 commune="Grenoble") for i in range(6)]
    + [structure(40 + i, lon=2.35 + i * 0.01, lat=48.85, types=KINDS[i % 5], region="11",
                 departement="75", commune="Paris") for i in range(5)]
    + [structure(60, lon=4.39, lat=44.62, types=["ACI"], departement="07", commune="Aubenas",
                 geo_precision="municipality", nom="Atelier du centre")]
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("wh")
    # a first release without the Aubenas structure, then the current one that adds it
    load(home, ROWS[:-1])
    publish_release(home)
    load(home, ROWS)
    # a tiny communes reference: two communes of the Rhône, one of the Isère
    with connect(WarehousePaths(home).database) as con:
        con.execute("CREATE TABLE core.communes (code_insee VARCHAR, type VARCHAR, "
                    "departement VARCHAR, geometry BLOB)")
        con.executemany("INSERT INTO core.communes VALUES (?, 'COM', ?, ?)", [
            ("69123", "69", shapely.to_wkb(box(4.7, 45.6, 4.9, 45.9))),
            ("69259", "69", shapely.to_wkb(box(4.9, 45.6, 5.1, 45.9))),
            ("38185", "38", shapely.to_wkb(box(5.6, 45.1, 5.8, 45.3)))])
        con.execute("CREATE TABLE core.departements (departement VARCHAR, nom VARCHAR, "
                    "region VARCHAR)")
        con.execute("INSERT INTO core.departements VALUES ('69', 'Rhône', '84'), "
                    "('38', 'Isère', '84')")
    publish_release(home)
    server = make_server(home, port=0)
    serve_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page, time.perf_counter() - t0, requests


def count(page) -> int:
    return int(page.locator("#counter").inner_text().split()[0])


def expected(kinds=None, region=None, departement=None):
    out = 0
    for r in ROWS:
        if kinds is not None and not set(r["types"]) & kinds:
            continue
        if region and r["region"] != region:
            continue
        if departement and r["departement"] != departement:
            continue
        out += 1
    return out


def test_page_loads_offline_and_shows_every_structure(site, browser):
    page, seconds, requests = open_page(browser, site)
    assert count(page) == len(ROWS)
    assert all(u.startswith(site) for u in requests), "a request left localhost"
    assert page.locator("#freshness").inner_text().startswith("Données du")
    assert page.locator("#list li").count() == len(ROWS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map.png"), full_page=True)
    (ARTIFACTS / "map-load.json").write_text(json.dumps({"seconds_to_ready": round(seconds, 3),
                                                          "structures": len(ROWS)}))
    print(f"map page ready in {seconds:.2f} s with {len(ROWS)} structures")
    page.close()


def test_without_tiles_the_departements_outlines_are_the_background(site, browser):
    page, _, requests = open_page(browser, site)
    page.wait_for_selector("#map[data-outline]", timeout=30_000)
    assert page.locator("#map").get_attribute("data-outline") == "2"  # Rhône, Isère
    assert page.locator(".leaflet-overlay-pane path").count() == 2
    assert any(u.endswith("/outline.geojson") for u in requests)
    page.close()


def test_kind_filter_changes_the_count(site, browser):
    page, _, _ = open_page(browser, site)
    page.get_by_label("AI", exact=False).first.uncheck()
    remaining = {"ACI", "EI", "ETTI", "EITI"}
    assert count(page) == expected(kinds=remaining)
    assert "types=" in page.url
    page.close()


def test_region_and_departement_parameters_open_on_that_area(site, browser):
    page, _, _ = open_page(browser, site + "?region=11")
    assert count(page) == expected(region="11")
    assert page.locator("#region").input_value() == "11"
    page.close()
    page, _, _ = open_page(browser, site + "?departement=38")
    assert count(page) == expected(departement="38")
    assert page.locator("#region").input_value() == "84"
    page.close()


def test_search_and_popup_with_the_commune_centre_note(site, browser):
    page, _, _ = open_page(browser, site)
    page.get_by_label("Nom ou commune").fill("aubenas")
    assert count(page) == 1
    page.locator("#list a").first.click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for(timeout=10_000)
    text = popup.inner_text()
    assert "Atelier du centre" in text and "ACI" in text
    assert "centre de la commune" in text
    assert "Nouvelle dans cette publication" in text  # added since the previous release
    assert "nouvelle" in page.locator("#list li").first.inner_text()
    page.get_by_label("Nom ou commune").fill("grenoble")
    assert "nouvelle" not in page.locator("#list").inner_text()
    page.close()


def test_filters_are_labelled_and_reachable_by_keyboard(site, browser):
    page, _, _ = open_page(browser, site)
    for label in ("Région", "Département", "Nom ou commune"):
        assert page.get_by_label(label).count() == 1
    page.keyboard.press("Tab")
    focused = []
    for _ in range(12):
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.type"))
        page.keyboard.press("Tab")
    assert {"region", "departement", "search"} <= set(focused)
    page.close()
