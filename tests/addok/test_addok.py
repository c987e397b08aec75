"""The geocoding client against a real addok (the BAN's engine) loaded with real addresses.

Optional tier: needs Debian's `redis-server` and addok 1.2.1 in `.addok/`
(`scripts/setup_addok.sh`; `.ci/run` installs both). Skipped, with the reason, otherwise.
The index holds the demo's streets and house numbers as the BAN answered them
(samples/ban_answers.csv) and the municipalities of those communes and of the Rhône, so the
client meets addok's own CSV dialect (BOM, no result_status), scores and filters.
"""

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from flows.geocoder import BanClient
from transforms.geocoding import Query, accept, distance_km
from transforms.spec import GeocoderSettings
from warehouse.reference import read_reference

ROOT = Path(__file__).resolve().parents[2]
ADDOK = Path(os.environ.get("SIAE_ADDOK_BIN", ROOT / ".addok" / "bin" / "addok"))
REDIS = shutil.which("redis-server")
ANSWERS = ROOT / "samples" / "ban_answers.csv"
pytestmark = [
    pytest.mark.skipif(REDIS is None, reason="no redis-server (apt-get install redis-server)"),
    pytest.mark.skipif(not ADDOK.exists(), reason=f"no addok at {ADDOK} "
                                                  "(run scripts/setup_addok.sh)"),
]

CONFIG = """
QUERY_PROCESSORS_PYPATHS = [
    "addok.helpers.text.check_query_length",
    "addok_france.extract_address",
    "addok_france.clean_query",
    "addok_france.remove_leading_zeros",
]
SEARCH_RESULT_PROCESSORS_PYPATHS = [
    "addok.helpers.results.match_housenumber",
    "addok_france.make_labels",
    "addok.helpers.results.score_by_importance",
    "addok.helpers.results.score_by_autocomplete_distance",
    "addok.helpers.results.score_by_ngram_distance",
    "addok.helpers.results.score_by_geo_distance",
]
PROCESSORS_PYPATHS = [
    "addok.helpers.text.tokenize",
    "addok.helpers.text.normalize",
    "addok_france.glue_ordinal",
    "addok_france.fold_ordinal",
    "addok_france.flag_housenumber",
    "addok.helpers.text.synonymize",
    "addok_fr.phonemicize",
]
EXTRA_FIELDS = [{"key": "citycode"}]
FILTERS = ["type", "postcode", "citycode"]
BATCH_WORKERS = 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def answered() -> list[dict]:
    """The demo's addresses that the real BAN placed at a house number."""
    rows = list(csv.DictReader(ANSWERS.open(encoding="utf-8")))
    return [r for r in rows if r["result_status"] == "ok" and r["result_type"] == "housenumber"]


def documents() -> list[dict]:
    """addok documents: one street per (street, commune) with its house numbers, and
    municipalities with their centre."""
    streets: dict[tuple[str, str], dict] = {}
    for r in answered():
        m = re.match(r"^(\d+\w*)\s+(.*)\s+(\d{5})\s+(.*)$", r["result_label"])
        if not m:
            continue
        number, name, postcode, city = m.groups()
        point = {"lat": float(r["latitude"]), "lon": float(r["longitude"])}
        doc = streets.setdefault((name, r["result_citycode"]), {
            "id": f"{r['result_citycode']}_{len(streets):04d}", "type": "street", "name": name,
            "postcode": postcode, "citycode": r["result_citycode"], "city": city,
            "importance": 0.5, **point, "housenumbers": {}})
        doc["housenumbers"][number] = point
    ref = read_reference()
    communes, postcodes = ref["communes"], ref["postcodes"]
    wanted = {code for _, code in streets}
    chosen = communes[(communes["type"] == "COM") & (communes["departement"].eq("69")
                                                     | communes["code_insee"].isin(wanted))]
    first_postcode = postcodes.sort_values("code_postal").groupby("code_insee")["code_postal"]
    first_postcode = first_postcode.first().to_dict()
    towns = [{"id": c.code_insee, "type": "municipality", "name": c.nom, "city": c.nom,
              "citycode": c.code_insee, "postcode": first_postcode.get(c.code_insee, ""),
              "lat": c.centre_lat, "lon": c.centre_lon, "importance": 0.3}
             for c in chosen.itertuples() if c.centre_lat == c.centre_lat]
    return list(streets.values()) + towns


@pytest.fixture(scope="module")
def addok(tmp_path_factory):
    folder = tmp_path_factory.mktemp("addok")
    redis_port, http_port = free_port(), free_port()
    env = {**os.environ, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port)}
    log = (folder / "servers.log").open("w")
    redis = subprocess.Popen([REDIS, "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(folder)],
                             stdout=log, stderr=log)
    server = None
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", redis_port), 1).close()
                   or True, 30, "redis-server")
        (folder / "local.py").write_text(CONFIG)
        docs = documents()
        (folder / "docs.ndjson").write_text(
            "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        base = [str(ADDOK), "--config", str(folder / "local.py")]
        t0 = time.perf_counter()
        for command in (["batch", str(folder / "docs.ndjson")], ["ngrams"]):
            subprocess.run(base + command, env=env, check=True, timeout=300,
                           stdout=log, stderr=log)
        print(f"addok: indexed {len(docs)} documents in {time.perf_counter() - t0:.1f} s")
        server = subprocess.Popen(base + ["serve", "--host", "127.0.0.1", "--port",
                                          str(http_port)], env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: requests.get(f"{url}/search/", params={"q": "lyon"},
                                        timeout=2).ok, 60, "addok serve")
        yield url
    finally:
        for proc in (server, redis):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        log.close()


def client(url: str) -> BanClient:
    return BanClient(GeocoderSettings(base_url=url, rate_per_second=20), "SIAE-Atlas tests")


def query(key: str, adresse: str, code_postal: str, commune: str, code_insee: str) -> Query:
    return Query(key, adresse, code_postal, commune, code_insee)


def test_the_demo_addresses_come_back_at_the_ban_points(addok):
    rows = answered()
    queries = [query(f"q{i}", r["adresse"], r["code_postal"], r["commune"], r["code_insee"])
               for i, r in enumerate(rows)]
    t0 = time.perf_counter()
    results = client(addok).search_csv(queries)
    seconds = time.perf_counter() - t0
    assert set(results) == {q.key for q in queries}  # every row answered, read by name
    kept, off = 0, []
    for i, r in enumerate(rows):
        result = results[f"q{i}"]
        ok, _ = accept(result, GeocoderSettings().min_score)
        if ok:
            kept += 1
            d = distance_km((result.longitude, result.latitude),
                            (float(r["longitude"]), float(r["latitude"])))
            if d > 0.05:
                off.append((r["adresse"], round(d, 3)))
    print(f"addok: {kept}/{len(rows)} demo addresses accepted at street level "
          f"in one request of {seconds:.2f} s")
    assert off == []  # an accepted answer is the BAN's point
    assert kept >= 0.9 * len(rows)


def test_a_street_missing_from_the_index_is_never_taken_for_a_street_point(addok):
    results = client(addok).search_csv([
        query("street", "12 rue Imaginaire", "69670", "Vaugneray", "69255"),
        query("town", "Vaugneray", "69670", "Vaugneray", "69255")])
    # addok answers not-found where the BAN would give a low-score municipality: either way
    # the structure falls back to its commune's centre
    assert results["street"].status in ("not-found", "ok")
    assert results["street"].type in (None, "municipality")
    assert not accept(results["street"], GeocoderSettings().min_score)[0]
    town = results["town"]
    assert (town.status, town.type, town.citycode) == ("ok", "municipality", "69255")
    assert not accept(town, GeocoderSettings().min_score)[0]  # a commune is not a street point


def test_the_citycode_filter_keeps_answers_in_the_commune(addok):
    # a real street of Bourg-en-Bresse, asked for in Lyon: no Bourg-en-Bresse point comes back
    results = client(addok).search_csv([
        query("right", "18 rue Montesquieu", "01000", "Bourg-en-Bresse", "01053"),
        query("wrong", "18 rue Montesquieu", "69003", "Lyon", "69123")])
    assert results["right"].citycode == "01053" and results["right"].type == "housenumber"
    assert results["wrong"].citycode in (None, "69123")
    assert not accept(results["wrong"], GeocoderSettings().min_score)[0]
