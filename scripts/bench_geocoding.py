"""Benchmark: geocode N addresses against a local server speaking the BAN CSV contract, then
again (cache). Prints requests, seconds and the cache hit rate of the re-run.

    uv run python scripts/bench_geocoding.py [--addresses 10000] [--batch-size 5000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
from pytest_httpserver import HTTPServer  # noqa: E402

from flows.geocoder import BanClient, geocode_structures  # noqa: E402
from tests.helpers import ban_handler  # noqa: E402
from transforms.spec import GeocoderSettings  # noqa: E402
from warehouse.db import apply_schema  # noqa: E402

STREETS = ("rue de la République", "avenue Jean Jaurès", "chemin des Vignes", "place du Marché")


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--addresses", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    args = ap.parse_args()
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    server.start()
    structures = [{"structure_id": f"s{i}", "adresse": f"{i % 300 + 1} {STREETS[i % 4]} {i}",
                   "code_postal": f"{69001 + i % 9}", "commune": "Lyon", "code_insee": "69123"}
                  for i in range(args.addresses)]
    settings = GeocoderSettings(base_url=server.url_for("/geocodage"),
                                batch_size=args.batch_size)
    con = duckdb.connect()
    apply_schema(con)
    print(f"{'run':<10}{'addresses':>10}{'requests':>10}{'sent':>8}{'cache hits':>12}"
          f"{'hit rate':>10}{'seconds':>9}")
    for label in ("first", "re-run"):
        client = BanClient(settings, "SIAE-Atlas/bench")
        t0 = time.perf_counter()
        _, stats = geocode_structures(con, structures, settings, client)
        seconds = time.perf_counter() - t0
        client.close()
        rate = stats.cache_hits / stats.addresses if stats.addresses else 0
        print(f"{label:<10}{stats.addresses:>10}{stats.requests:>10}{stats.sent:>8}"
              f"{stats.cache_hits:>12}{rate:>10.0%}{seconds:>9.2f}")
    server.stop()


if __name__ == "__main__":
    main()
