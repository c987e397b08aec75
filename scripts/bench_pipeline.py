"""Benchmark: the whole `siae sync` at national size, then a re-run with nothing changed, then
one with 1% of the rows edited. Prints seconds per step, peak memory and file sizes.

Four CSV sources describe N places in real communes (2 to 4 sources per place, a tenth of the
network's rows without SIRET, half with coordinates); the geocoder is a local server speaking
the BAN's CSV contract. The first run includes Prefect's temporary server start-up.

    uv run python scripts/bench_pipeline.py [--places 5000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
from pytest_httpserver import HTTPServer  # noqa: E402

from flows.outcome import summary_of  # noqa: E402
from flows.sync import sync  # noqa: E402
from tests.helpers import ban_handler  # noqa: E402
from tests.synthetic import HEADER, reference_for_generation, write_synthetic  # noqa: E402


def write_sources(folder: Path, places: int, ban_url: str, seed: int = 7) -> dict:
    """The synthetic national set with the real patterns (tests/synthetic.py)."""
    return write_synthetic(folder, places, reference_for_generation(), seed=seed,
                           ban_url=ban_url)


def edit_one_percent(folder: Path, seed: int = 11) -> int:
    """Change the phone of 1% of the network's rows, those without SIRET first: the network
    has no ids, so each edited row is re-keyed, and nothing else identifies those places."""
    path = folder / "reseau.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    rng = random.Random(seed)
    count = max(1, (len(table) - 1) // 100)
    bare = [i for i in range(1, len(table)) if not table[i][HEADER.index("siret")]]
    picked = rng.sample(bare, min(count, len(bare)))
    for i in picked:
        table[i][HEADER.index("tel")] = f"04{rng.randint(10000000, 99999999)}"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(table)
    return len(picked)


def size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--places", type=int, default=5000)
    ap.add_argument("--keep", type=Path, help="keep the folder (sources and warehouse) here")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="siae-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/geocodage/search/csv/").respond_with_handler(ban_handler())
    server.start()
    try:
        write_sources(folder, args.places, server.url_for("/geocodage"))
        home = folder / "wh"
        edited, ids = 0, set()
        for label in ("first", "unchanged", "1% edited"):
            if label == "1% edited":
                edited = edit_one_percent(folder)
            t0 = time.perf_counter()
            summary = summary_of(sync(str(folder / "sources.toml"), home=str(home),
                                      return_state=True))
            wall = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            steps = {}
            for s in summary.steps:
                steps[s.step] = steps.get(s.step, 0.0) + s.seconds
            detail = ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
            print(f"{label:<10} {wall:6.1f} s wall; {summary.structures} structures, "
                  f"{summary.features} features, {summary.geocoding_requests} geocoding "
                  f"requests; peak RSS {peak:.0f} MiB")
            print(f"{'':<10} steps (s): {detail}")
            now = _structure_ids(home)
            if ids:
                print(f"{'':<10} structure_ids kept from the previous run: "
                      f"{len(ids & now)}/{len(ids)}")
            ids = now
        print(f"1% edited: {edited} network rows without SIRET re-keyed, {_successions(home)} "
              f"kept their structure_id by succession")
        print(f"warehouse {size(home / 'siae.duckdb')}; GeoJSON "
              f"{size(home / 'publish' / 'siae.geojson')}; folder {folder}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def _successions(home: Path) -> int:
    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM core.id_successions").fetchone()[0]


def _structure_ids(home: Path) -> set[str]:
    with duckdb.connect(str(home / "siae.duckdb"), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT structure_id FROM core.structures").fetchall()}


if __name__ == "__main__":
    main()
