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
from stdnum import luhn  # noqa: E402

from flows.sync import sync  # noqa: E402
from tests.helpers import ban_handler  # noqa: E402
from warehouse.reference import read_reference  # noqa: E402

WORDS = ("Atelier", "Jardins", "Recyclerie", "Tremplin", "Solidarité", "Avenir", "Bâtiment",
         "Ressourcerie", "Emploi", "Services", "Vallée", "Horizon", "Passerelle", "Envol")
KINDS = ("ACI", "AI", "EI", "ETTI", "EITI")
SOURCES = ("asp", "emplois", "reseau", "annuaire")
HEADER = ["id", "siret", "nom", "type", "adresse", "cp", "ville", "insee", "tel", "lat", "lon"]


def siret(i: int) -> str:
    """A valid SIRET: its SIREN and the whole number both pass the Luhn check."""
    siren = f"{20000000 + i:08d}"
    siren += luhn.calc_check_digit(siren)
    body = siren + "0001"
    return body + luhn.calc_check_digit(body)


def write_sources(folder: Path, places: int, ban_url: str, seed: int = 7) -> None:
    rng = random.Random(seed)
    ref = read_reference()
    communes = ref["communes"]
    communes = communes[(communes["type"] == "COM") & communes["centre_lat"].notna()]
    postcode = ref["postcodes"].sort_values("code_postal").groupby("code_insee")[
        "code_postal"].first().to_dict()
    towns = [(c.code_insee, c.nom, postcode[c.code_insee], c.centre_lat, c.centre_lon)
             for c in communes.itertuples() if c.code_insee in postcode]
    rows: dict[str, list[list]] = {s: [] for s in SOURCES}
    for i in range(places):
        insee, name, cp, lat, lon = rng.choice(towns)
        nom = " ".join(rng.sample(WORDS, 2)) + f" {i}"
        kind = rng.choice(KINDS)
        adresse = f"{rng.randint(1, 150)} rue {rng.choice(WORDS)}"
        point = (f"{lat + rng.uniform(-0.005, 0.005):.6f}",
                 f"{lon + rng.uniform(-0.005, 0.005):.6f}")
        for source in rng.sample(SOURCES, rng.randint(2, 4)):
            no_siret = source == "reseau" and rng.random() < 0.1
            rows[source].append([
                "" if source == "reseau" else f"{source}-{i}", "" if no_siret else siret(i),
                nom, kind, adresse, cp, name, insee if source != "reseau" else "",
                f"04{rng.randint(10000000, 99999999)}",
                *(point if rng.random() < 0.5 else ("", ""))])
    columns = {"siret": "siret", "nom": "nom", "types": "type", "adresse": "adresse",
               "code_postal": "cp", "commune": "ville", "code_insee": "insee",
               "telephone": "tel", "latitude": "lat", "longitude": "lon"}
    toml = ["[geocoder]", f'base_url = "{ban_url}"', "rate_per_second = 40", "",
            "[publication]", "keep = 2", ""]
    for source, table in rows.items():
        with (folder / f"{source}.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADER)
            writer.writerows(table)
        mapping = dict(columns, **({"source_id": "id"} if source != "reseau" else {}))
        ignore = '["id", "insee"]' if source == "reseau" else "[]"
        toml += [f"[sources.{source}]", 'kind = "file"', f'path = "{source}.csv"',
                 f"ignore_columns = {ignore}", f"[sources.{source}.columns]"]
        toml += [f'{k} = "{v}"' for k, v in mapping.items()] + [""]
    (folder / "sources.toml").write_text("\n".join(toml), encoding="utf-8")


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
            summary = sync(str(folder / "sources.toml"), home=str(home))
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
