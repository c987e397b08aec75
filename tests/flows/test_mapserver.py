"""The map server serves the page, the vendored assets and the publication, nothing else."""

import http.client
import json

import pytest

from flows.mapserver import make_server, serve_in_thread
from flows.publish import publish_release
from tests.helpers import BASE, load


@pytest.fixture
def server(tmp_path):
    load(tmp_path, BASE)
    publish_release(tmp_path)
    srv = make_server(tmp_path, port=0, tiles="https://tiles.example/{z}/{x}/{y}.png")
    serve_in_thread(srv)
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize(
    "path",
    ["/", "/app.js", "/vendor/leaflet/leaflet.js", "/vendor/markercluster/MarkerCluster.css",
     "/data/siae.geojson", "/data/datapackage.json"],
)
def test_page_assets_and_publication_are_served(server, path):
    status, body = get(server, path)
    assert status == 200 and body


@pytest.mark.parametrize(
    "path", ["/data/../siae.duckdb", "/../pyproject.toml", "/vendor/leaflet/../../../../etc/passwd",
             "/data/%2e%2e/siae.duckdb"],
)
def test_nothing_outside_the_served_folders(server, path):
    assert get(server, path)[0] == 404


def test_tile_layer_setting_reaches_the_page(server):
    status, body = get(server, "/config.json")
    assert json.loads(body)["tiles"] == "https://tiles.example/{z}/{x}/{y}.png"
