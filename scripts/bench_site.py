"""Benchmark: the mini-site on a national publication of N synthetic structures (default
20,000 in real communes), served by a plain static server, in headless Chromium. Prints the
site's build time and sizes, the time to the first markers, and the time a filter change
takes (the median of several).

    uv run python scripts/bench_site.py [--structures 20000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.publish import publish_release  # noqa: E402
from flows.site import build_site  # noqa: E402
from tests.helpers import load, structure  # noqa: E402
from tests.synthetic import reference_for_generation, towns  # noqa: E402
from warehouse.db import connect  # noqa: E402
from warehouse.paths import WarehousePaths  # noqa: E402
from warehouse.reference import ensure_communes  # noqa: E402

KINDS = [["ACI"], ["AI"], ["EI"], ["ETTI"], ["EITI"], ["ACI", "ETTI"]]


def publication(home: Path, n: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    all_towns, _ = towns(reference_for_generation())
    regions = {}
    with connect(WarehousePaths(home).ensure().database) as con:
        ensure_communes(con)
        for code, region, dep in con.execute(
                "SELECT code_insee, region, departement FROM core.communes WHERE type = 'COM'"
        ).fetchall():
            regions[code] = (region, dep)
    rows = []
    for i in range(n):
        code, commune, cp, lat, lon = rng.choice(all_towns)
        region, dep = regions.get(code, (None, None))
        rows.append(structure(i, lon=round(lon + rng.uniform(-.01, .01), 6),
                              lat=round(lat + rng.uniform(-.01, .01), 6), region=region,
                              departement=dep, commune=commune, code_postal=cp,
                              code_insee=code, types=rng.choice(KINDS),
                              nom=f"Structure {rng.choice(['Atelier', 'Recyclerie', 'Envol'])} {i}",
                              telephone="+33465711234", recrute=rng.random() < 0.2,
                              postes_ouverts=["Agent de tri"]))
    load(home, rows)
    publish_release(home)


def serve(folder: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return proc, f"http://127.0.0.1:{port}/"


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--structures", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="siae-bench-site-"))
    try:
        home = folder / "wh"
        publication(home, args.structures)
        t0 = time.perf_counter()
        result = build_site(home)
        build = time.perf_counter() - t0
        site = home / "site"
        size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        index = site / "data" / "index.json"
        print(f"{result['structures']} structures; site built in {build:.1f} s, "
              f"{size / 2**20:.0f} MiB in all; data/index.json "
              f"{index.stat().st_size / 2**20:.1f} MiB, .gz "
              f"{index.with_name('index.json.gz').stat().st_size / 2**10:.0f} KiB, .br "
              f"{index.with_name('index.json.br').stat().st_size / 2**10:.0f} KiB")
        proc, url = serve(site)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
                first, filters, clustered = [], [], []
                for _ in range(args.runs):
                    page = browser.new_page(viewport={"width": 1280, "height": 860})
                    page.goto(url + "index.html")
                    page.wait_for_selector("body[data-clustered=true]", timeout=60_000)
                    # the page's own clock, from the navigation's start: Playwright's polling
                    # cannot run while the page computes, so it would see the points late
                    times = page.evaluate("() => window.siaeTimes")
                    first.append(times["firstPoints"] / 1000)
                    clustered.append(times["clustered"] / 1000)
                    for kind in ("EI", "ETTI", "EI", "ETTI"):
                        filters.append(page.evaluate("""(kind) => {
                            const box = document.querySelector(`#kinds input[value="${kind}"]`);
                            const t0 = performance.now();
                            box.checked = !box.checked;
                            box.dispatchEvent(new Event('change', {bubbles: true}));
                            return performance.now() - t0; }""", kind))
                    page.close()
                browser.close()
        finally:
            proc.terminate()
        print(f"first markers: median {statistics.median(first):.2f} s over {len(first)} "
              f"loads (target <= 1.5 s)")
        print(f"clusters ready: median {statistics.median(clustered):.2f} s")
        print(f"filter change: median {statistics.median(filters):.0f} ms, max "
              f"{max(filters):.0f} ms over {len(filters)} changes (target <= 200 ms)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
