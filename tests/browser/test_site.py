"""The mini-site in real headless Chromium, served by a plain static server
(`python -m http.server`), built from the demo's publication and from one full of script
payloads. Screenshots land in docs/screenshots/ (shown in the README)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.site import build_site
from flows.sync import sync_direct
from tests.helpers import ROOT, query
from transforms.site import fold

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (apt-get install "
                                       "chromium); .ci/run installs it")
SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


def _serve(folder: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "samples", folder / "samples")
    toml = folder / "samples" / "sources.toml"  # the demo sets a report_url ([site])
    assert "report_url" in toml.read_text(encoding="utf-8")
    home = folder / "wh"
    summary = sync_direct(str(toml), home=str(home))
    assert summary.published
    site = home / "site"
    proc, url = _serve(site)
    yield {"home": home, "site": site, "url": url,
           "index": json.loads((site / "data" / "index.json").read_text())}
    proc.terminate()


PAYLOAD = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """A partner list with script payloads in every field, and les emplois' positions."""
    folder = tmp_path_factory.mktemp("xss")
    rows = ["Nom;SIRET;Enseigne;Adresse;Complément;CP;Ville;Type;Tel;Mail;Site;Description"]
    for i, siret in enumerate(["19070916200019", "42385519600014", "39485379000266",
                               "34255976200048", "40058084100015"]):
        rows.append(";".join([f"Structure {i} {PAYLOAD}", siret, PAYLOAD,
                              f"{i + 1} rue {PAYLOAD}", PAYLOAD, "07200", f"Aubenas{PAYLOAD}",
                              "ACI", "04 65 71 12 34", f"a{i}@b.example",
                              "javascript:window.__xss=3", f"</script>{PAYLOAD}"]))
    (folder / "liste.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "sources.toml").write_text("""
[sources.liste]
kind = "file"
path = "liste.csv"
[sources.liste.columns]
nom = "Nom"
siret = "SIRET"
enseigne = "Enseigne"
adresse = "Adresse"
complement_adresse = "Complément"
code_postal = "CP"
commune = "Ville"
types = "Type"
telephone = "Tel"
courriel = "Mail"
site_web = "Site"
description = "Description"
[geocoder]
enabled = false
[site]
report_url = "https://signaler.example/?id={id}&nom={nom}"
""", encoding="utf-8")
    home = folder / "wh"
    assert sync_direct(str(folder / "sources.toml"), home=str(home)).published
    proc, url = _serve(home / "site")
    yield {"home": home, "url": url}
    proc.terminate()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def open_page(browser, url, viewport=DESKTOP, ready=True):
    page = browser.new_page(viewport=viewport)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("dialog", lambda d: (page.errors.append(f"dialog {d.message}"), d.dismiss()))
    page.goto(url)
    if ready:
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page


def shown(page) -> int:
    return int(page.locator("body").get_attribute("data-shown"))


def key(r, f) -> str:
    """What the page searches in: the name, the commune and the postcode, folded."""
    return fold(" ".join(filter(None, (r[f["nom"]], r[f["commune"]], r[f["cp"]]))))


def rows_where(demo_site, test):
    f = {name: i for i, name in enumerate(demo_site["index"]["fields"])}
    return [r for r in demo_site["index"]["rows"] if test(r, f)]


# --- the map page ---------------------------------------------------------------------------

def test_home_shows_every_structure_offline_with_mainland_first(demo_site, browser):
    page = open_page(browser, demo_site["url"] + "index.html")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    assert shown(page) == len(demo_site["index"]["rows"]) == 64
    page.wait_for_selector("#map[data-outline]", timeout=20_000)
    assert int(page.locator("#map").get_attribute("data-outline")) > 90  # départements
    assert not page.errors
    assert all(r.startswith(demo_site["url"]) for r in requests)  # no CDN, nothing outside
    page.screenshot(path=str(SCREENSHOTS / "home-desktop.png"))


@pytest.mark.parametrize(
    ("query", "test"),
    [
        ("?types=EI", lambda r, f: "EI" in r[f["types"]]),
        ("?departement=07", lambda r, f: r[f["dep"]] == "07"),
        ("?region=84&types=ACI,AI", lambda r, f: r[f["reg"]] == "84"
         and {"ACI", "AI"} & set(r[f["types"]])),
        ("?recrute=1", lambda r, f: r[f["recrute"]] is True),
        ("?q=st%20etienne", lambda r, f: "saint etienne" in key(r, f)),
        ("?q=SAINT-ETIENNE", lambda r, f: "saint etienne" in key(r, f)),
        ("?q=07200", lambda r, f: "07200" in key(r, f)),
    ],
    ids=["kind", "departement", "region-and-kinds", "recruiting", "st-etienne",
         "hyphen-and-case", "postcode"],
)
def test_filters_and_tolerant_search_from_the_url(demo_site, browser, query, test):
    page = open_page(browser, demo_site["url"] + "index.html" + query)
    expected = rows_where(demo_site, test)
    assert expected and shown(page) == len(expected)
    assert page.locator("#list .card").count() == min(len(expected), 50)


def test_typing_a_search_and_ticking_filters_change_the_list(demo_site, browser):
    page = open_page(browser, demo_site["url"] + "index.html")
    page.fill("#search", "grenoble")
    grenoble = rows_where(demo_site, lambda r, f: "grenoble" in key(r, f))
    page.wait_for_function(f"() => document.body.dataset.shown === '{len(grenoble)}'")
    page.fill("#search", "")
    page.check("#recrute")
    recruiting = rows_where(demo_site, lambda r, f: r[f["recrute"]] is True)
    page.wait_for_function(f"() => document.body.dataset.shown === '{len(recruiting)}'")
    assert "recrute=1" in page.url


def test_pres_de_a_commune_lists_cards_by_distance(demo_site, browser):
    page = open_page(browser, demo_site["url"] + "index.html")
    page.fill("#near-commune", "Auben")
    page.wait_for_selector("#near-options option[value='Aubenas (07200)']", state="attached")
    page.fill("#near-commune", "Aubenas (07200)")
    page.dispatch_event("#near-commune", "change")
    page.wait_for_selector(".card .distance")
    distances = [float(t.split()[0].replace(",", "."))
                 for t in page.locator(".card .distance").all_inner_texts()]
    assert distances and distances == sorted(distances) and distances[-1] <= 20
    assert "pres=07019" in page.url and "Aubenas" in page.locator("#listing-title").inner_text()
    # the same view from the URL
    again = open_page(browser, demo_site["url"] + "index.html?pres=07019&rayon=20")
    assert shown(again) == len(distances)


def test_popup_gives_the_french_phone_and_the_email_and_escape_closes_it(demo_site, browser):
    f = {n: i for i, n in enumerate(demo_site["index"]["fields"])}
    details = {}
    for path in (demo_site["site"] / "data" / "regions").glob("*.json"):
        details.update(json.loads(path.read_text()))
    target = next(r for r in demo_site["index"]["rows"]
                  if details[r[f["id"]]]["telephone"] and details[r[f["id"]]]["courriel"])
    d = details[target[f["id"]]]
    page = open_page(browser, demo_site["url"] + "index.html?q=" + target[f["nom"]])
    assert shown(page) == 1
    page.locator(".leaflet-marker-icon:not(.marker-cluster)").first.click()
    popup = page.locator(".leaflet-popup-content")
    popup.get_by_text("Tél.").wait_for()
    assert d["telephone"] in popup.inner_text() and " " in d["telephone"]  # 04 65 71 …
    assert popup.locator(f"a[href='mailto:{d['courriel']}']").count() == 1
    assert popup.locator(f"a[href='tel:{d['tel']}']").count() == 1
    page.keyboard.press("Escape")
    page.wait_for_selector(".leaflet-popup", state="detached")


def test_enter_on_a_cluster_zooms_in(demo_site, browser):
    page = open_page(browser, demo_site["url"] + "index.html")
    before = page.locator(".marker-cluster").count()
    assert before >= 1
    cluster = page.locator(".marker-cluster").first
    cluster.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"() => document.querySelectorAll('.marker-cluster').length != {before} || "
        "document.querySelectorAll('.leaflet-marker-icon:not(.marker-cluster)').length > 0",
        timeout=10_000)


def test_on_a_phone_the_list_is_a_view_of_its_own_and_a_tap_opens_the_structure(
        demo_site, browser):
    page = open_page(browser, demo_site["url"] + "index.html", viewport=PHONE)
    assert page.locator("#more-filters").get_attribute("open") is None  # folded on a phone
    page.screenshot(path=str(SCREENSHOTS / "home-phone.png"))
    page.click("#show-list")
    assert not page.locator("#map").is_visible()
    first = page.locator("#list .card a").first
    name = first.inner_text()
    first.click()
    page.wait_for_url("**/structures/*.html")
    assert page.locator("h1").inner_text() == name


# --- the other pages ---------------------------------------------------------------------------

def test_a_structure_page_has_everything_and_valid_json_ld(demo_site, browser):
    sid, = query(demo_site["home"], "SELECT structure_id FROM marts.siae WHERE telephone IS NOT "
                                    "NULL AND courriel IS NOT NULL ORDER BY 1 LIMIT 1")[0]
    page = open_page(browser, demo_site["url"] + f"structures/{sid}.html", ready=False)
    page.wait_for_selector("#small-map .leaflet-marker-icon", timeout=20_000)
    tel = page.locator("a[href^='tel:']")
    assert tel.count() == 1 and tel.get_attribute("href").startswith("tel:+33")
    assert len(tel.inner_text().split()) == 5  # 04 65 71 07 59
    assert page.locator(".contact a[href^='mailto:']").count() == 1
    assert page.locator("a.report").get_attribute("href").endswith(sid)
    doc = json.loads(page.locator("script[type='application/ld+json']").text_content())
    assert doc["@type"] == "Organization" and doc["geo"]["latitude"]
    assert page.locator("table.provenance tbody tr").count() >= 3
    assert page.locator("dl.kinds dt").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "structure.png"), full_page=True)
    assert not page.errors


def test_a_redirected_id_points_to_its_successor(demo_site, tmp_path):
    from flows.publish import publish_release
    from warehouse.db import connect
    from warehouse.paths import WarehousePaths

    home = demo_site["home"]
    survivor = demo_site["index"]["rows"][0][0]
    with connect(WarehousePaths(home).database) as con:
        con.execute("INSERT INTO core.structure_redirects VALUES ('siae-gone000001', ?)",
                    [survivor])
    publish_release(home, force=True)
    out = tmp_path / "site"
    build_site(home, out=out)
    html = (out / "structures" / "siae-gone000001.html").read_text()
    assert f'url={survivor}.html' in html and f'href="{survivor}.html"' in html
    # merged into a place kept but not published (closed): no page to send a visitor to
    with connect(WarehousePaths(home).database) as con:
        (closed,), = con.execute("SELECT structure_id FROM core.structures "
                                 "WHERE etat_administratif = 'F' LIMIT 1").fetchall()
        con.execute("INSERT INTO core.structure_redirects VALUES ('siae-gone000002', ?)",
                    [closed])
    publish_release(home, force=True)
    build_site(home, out=tmp_path / "again")
    html = (tmp_path / "again" / "structures" / "siae-gone000002.html").read_text()
    assert "n'est plus publiée" in html and closed in html
    assert "http-equiv" not in html and f'href="{closed}.html"' not in html
    with connect(WarehousePaths(home).database) as con:
        con.execute("DELETE FROM core.structure_redirects WHERE from_id LIKE 'siae-gone%'")


def test_departement_and_region_pages(demo_site, browser):
    for path, heading in (("departements/07.html", "Ardèche"),
                          ("regions/84.html", "Auvergne-Rhône-Alpes")):
        page = open_page(browser, demo_site["url"] + path)
        assert heading in page.locator("h1").inner_text()
        assert page.locator("table tbody tr").count() >= 1
        page.wait_for_selector("#area-map .leaflet-marker-icon, #area-map .marker-cluster")
        assert not page.errors


def test_comprendre_l_iae(demo_site, browser):
    page = open_page(browser, demo_site["url"] + "comprendre-iae.html", ready=False)
    text = page.locator("main").inner_text()
    for word in ("ACI", "Association intermédiaire", "prescripteur", "les emplois de l'inclusion"):
        assert word in text
    assert page.locator("a[href='https://emplois.inclusion.beta.gouv.fr/']").count() >= 1


def test_a_rallye_of_five_structures(demo_site, browser):
    f = {n: i for i, n in enumerate(demo_site["index"]["fields"])}
    rows = sorted(demo_site["index"]["rows"], key=lambda r: r[f["lon"]])[::12][:5]
    ids = [r[f["id"]] for r in rows]
    page = open_page(browser, demo_site["url"] + "rallye.html?ids=" + ",".join(ids))
    assert page.locator("#rallye-list li").count() == 5
    ordered = [li.get_attribute("data-id") for li in page.locator("#rallye-list li").all()]
    assert ordered[0] == ids[0] and sorted(ordered) == sorted(ids)
    share = page.locator("#rallye-url").input_value()
    assert share.endswith("?ids=" + ",".join(ordered))

    from transforms.site import distance_km
    points = {r[f["id"]]: (r[f["lat"]], r[f["lon"]]) for r in rows}

    def length(order):
        return sum(distance_km(points[a], points[b]) for a, b in zip(order, order[1:],
                                                                    strict=False))
    total = float(page.locator("body").get_attribute("data-total"))
    assert abs(total - length(ordered)) < 0.01 and total <= length(ids) + 1e-6
    page.screenshot(path=str(SCREENSHOTS / "rallye.png"), full_page=True)
    # the rallye is kept in this browser: the header counts it, a card's toggle changes it
    page.goto(demo_site["url"] + "index.html")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("[data-rallye-count]").inner_text() == "5"
    page.locator(".card .rallye-toggle").first.click()
    assert page.locator("[data-rallye-count]").inner_text() in ("4", "6")


# --- hostile data --------------------------------------------------------------------------------

def test_script_payloads_in_every_field_run_nowhere(hostile_site, browser):
    sid, = query(hostile_site["home"], "SELECT structure_id FROM marts.siae ORDER BY 1")[0]
    pages = ["index.html", "index.html?q=structure", f"structures/{sid}.html",
             "departements/07.html", "regions/84.html", f"rallye.html?ids={sid}"]
    for path in pages:
        page = open_page(browser, hostile_site["url"] + path, ready=False)
        page.wait_for_load_state("networkidle")
        if path.startswith("index"):
            page.wait_for_selector("body[data-ready=true]")
            page.locator(".leaflet-marker-icon").first.click()
            time.sleep(0.5)
        assert page.evaluate("() => window.__xss") is None, path
        assert not [e for e in page.errors if "dialog" in e], path
    page = open_page(browser, hostile_site["url"] + f"structures/{sid}.html", ready=False)
    assert "<script>" in page.locator("h1").inner_text()  # shown as text, not run
    assert page.locator("a[href^='javascript:']").count() == 0


# --- accessibility -----------------------------------------------------------------------------

@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_serious_violation_on_any_page_type(demo_site, browser, viewport):
    from axe_playwright_python.sync_playwright import Axe

    sid = demo_site["index"]["rows"][0][0]
    axe = Axe()
    for path in ["index.html", f"structures/{sid}.html", "departements/07.html",
                 "regions/84.html", "comprendre-iae.html", f"rallye.html?ids={sid}", "404.html"]:
        page = open_page(browser, demo_site["url"] + path, viewport=viewport, ready=False)
        page.wait_for_load_state("networkidle")
        result = axe.run(page)
        bad = [v for v in result.response["violations"]
               if v["impact"] in ("serious", "critical")]
        assert not bad, (path, [(v["id"], v["nodes"][0]["target"]) for v in bad])


def test_search_folding_is_the_same_in_python_and_in_the_page(demo_site, browser):
    page = open_page(browser, demo_site["url"] + "index.html")
    for text in ("Saint-Étienne", "ST ETIENNE", "Ste-Foy-lès-Lyon", "L'Île-d'Abeau", "Œuvre",
                 "Cœur d'ÆSOP Straße"):
        assert page.evaluate("(t) => SIAE.fold(t)", text) == fold(text)
