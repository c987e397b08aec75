"""Benchmark: publication file sizes and times, and the map page's load time, at demo size and
on a synthetic national-size set.

    uv run python scripts/bench_publication.py [--structures 5000] [--demo-home warehouse]

The synthetic set copies the shape of real records (names, addresses, kinds, phones, sites)
over random points of metropolitan France. The page is timed in Debian's chromium when
playwright and /usr/bin/chromium are there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from flows.mapserver import make_server, serve_in_thread  # noqa: E402
from flows.publish import publish_release  # noqa: E402
from transforms.kinds import SIAE_KINDS  # noqa: E402
from warehouse.db import (  # noqa: E402
    MARTS_SQL,
    RECORD_TYPES,
    STRUCTURE_TYPES,  # noqa: E402
    connect,
    replace_table,
)
from warehouse.paths import WarehousePaths  # noqa: E402

WORDS = ("Atelier", "Chantier", "Recyclerie", "Jardins", "Solidarité", "Emploi", "Insertion",
         "Services", "Bâtiment", "Environnement", "Ressourcerie", "Tremplin", "Avenir")
STREETS = ("rue de la République", "avenue Jean Jaurès", "chemin des Vignes", "place du Marché",
           "boulevard Gambetta", "route de Lyon", "impasse des Lilas", "quai de Saône")


def synthetic(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        r = dict.fromkeys(STRUCTURE_TYPES)
        dep = f"{rng.randint(1, 95):02d}".replace("20", "21")
        r.update(
            structure_id=f"siae-{i:010x}", identity_key=f"k{i}",
            siret=f"{rng.randint(10**13, 10**14 - 1)}", nom=" ".join(rng.sample(WORDS, 3)),
            types=sorted(rng.sample(SIAE_KINDS, rng.choice((1, 1, 1, 2)))),
            adresse=f"{rng.randint(1, 200)} {rng.choice(STREETS)}",
            code_postal=f"{dep}{rng.randint(0, 999):03d}", commune="Commune", departement=dep,
            code_insee=f"{dep}{rng.randint(1, 400):03d}", region="84",
            latitude=round(rng.uniform(43.0, 50.5), 6), longitude=round(rng.uniform(-1.5, 7.5), 6),
            geo_precision=rng.choice(("housenumber", "street", "municipality")),
            geo_source="ban", telephone=f"+3346571{i % 10000:04d}",
            courriel=f"contact{i}@structure.example", site_web=f"https://structure{i}.example",
            date_maj=dt.date(2026, 1, 1) + dt.timedelta(days=i % 300),
            sources=sorted(rng.sample(["emplois", "asp_fluxiae", "annuaire", "datainclusion"],
                                      2)),
            provenance="{}", geo_refused=[],
        )
        rows.append(r)
    return rows


def page_seconds(home: Path) -> float | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        return None
    server = make_server(home, port=0)
    serve_in_thread(server)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page()
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            page.wait_for_selector("body[data-ready=true]", state="attached", timeout=120_000)
            seconds = time.perf_counter() - t0
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return seconds


def report(label: str, home: Path, publish_s: float | None) -> None:
    pub = WarehousePaths(home).publish
    sizes = {n: (pub / n).stat().st_size for n in ("siae.geojson", "siae.csv", "siae.parquet")}
    load = page_seconds(home)
    print(f"{label:<22}" + "".join(f"{v / 1024:>12.1f}" for v in sizes.values())
          + (f"{publish_s:>11.2f}" if publish_s is not None else f"{'-':>11}")
          + (f"{load:>11.2f}" if load is not None else f"{'n/a':>11}"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--structures", type=int, default=5000)
    ap.add_argument("--demo-home", default=str(WarehousePaths.resolve().home))
    args = ap.parse_args()
    print(f"{'publication':<22}{'geojson KiB':>12}{'csv KiB':>12}{'parquet KiB':>12}"
          f"{'publish s':>11}{'page s':>11}")
    demo = Path(args.demo_home)
    if (demo / "publish" / "siae.geojson").exists():
        report("demo", demo, None)
    else:
        print("demo: no publication (run `uv run siae sync --demo` first)")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        paths = WarehousePaths(home).ensure()
        with connect(paths.database) as con:
            replace_table(con, "core.structures",
                          pd.DataFrame(synthetic(args.structures), dtype=object),
                          STRUCTURE_TYPES)
            replace_table(con, "core.records", pd.DataFrame(columns=list(RECORD_TYPES)),
                          RECORD_TYPES)  # the marts read them too
            con.execute(MARTS_SQL)
        t0 = time.perf_counter()
        publish_release(home)
        report(f"synthetic {args.structures}", home, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
