"""Benchmark: a national run of each public connector against a local server of national size.

Prints, per source, the requests made, the seconds taken, and for les emplois (12 requests a
minute) the time the same requests need at the real rate. Usage:

    uv run python scripts/bench_connectors.py [--siae 4000] [--fast]

`--fast` lifts Recherche d'entreprises' rate limit too (the real one takes about a minute).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.connectors import EMPLOIS_RATE_PER_MINUTE, RECHERCHE_RATE_PER_SECOND  # noqa: E402
from flows.fetch import fetch_payloads  # noqa: E402
from transforms.apis import (  # noqa: E402
    datainclusion_table,
    emplois_table,
    recherche_entreprises_table,
)
from transforms.spec import DEPARTEMENTS, parse_spec  # noqa: E402


def national(n: int, seed: int = 7) -> dict[str, list[str]]:
    """SIRETs spread over the départements (more in the populous ones, as in reality)."""
    rng = random.Random(seed)
    weights = [rng.uniform(0.3, 3.0) for _ in DEPARTEMENTS]
    by_dep: dict[str, list[str]] = {d: [] for d in DEPARTEMENTS}
    for i in range(n):
        dep = rng.choices(DEPARTEMENTS, weights)[0]
        by_dep[dep].append(f"{100000000 + i:09d}00010")
    return by_dep


def spec(kind: str, base: str, **extra):
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    return parse_spec(f'[sources.s]\nkind = "{kind}"\nbase_url = "{base}"\n{lines}',
                      Path("/tmp/sources.toml")).sources["s"]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
    ap = argparse.ArgumentParser()
    ap.add_argument("--siae", type=int, default=4000)
    ap.add_argument("--fast", action="store_true")
    args = ap.parse_args()
    by_dep = national(args.siae)
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    base = server.url_for("/").rstrip("/")

    def search(request: Request) -> Response:
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        sirets = by_dep[q["departement"]]
        page, per = int(q["page"]), int(q["per_page"])
        chunk = sirets[(page - 1) * per: page * per]
        results = [{"siren": s[:9], "nom_complet": f"SIAE {s}", "complements": {
            "est_siae": True, "type_siae": "ACI"}, "siege": {
            "siret": s, "code_postal": "69003", "commune": "69383",
            "libelle_commune": "LYON", "latitude": "45.75", "longitude": "4.85"},
            "matching_etablissements": []} for s in chunk]
        body = {"results": results, "total_results": len(sirets), "page": page,
                "per_page": per, "total_pages": max(1, math.ceil(len(sirets) / per))}
        return Response(json.dumps(body), content_type="application/json")

    def siaes(request: Request) -> Response:
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        sirets = by_dep[q["departement"]]
        page, size = int(q.get("page", 1)), int(q["page_size"])
        chunk = sirets[(page - 1) * size: page * size]
        more = page * size < len(sirets)
        nxt = (f"{base}/api/v1/siaes/?departement={q['departement']}&page={page + 1}"
               f"&page_size={size}") if more else None
        results = [{"id": s, "siret": s, "type": "ACI", "raison_sociale": f"SIAE {s}",
                    "code_postal": "69003", "ville": "Lyon"} for s in chunk]
        return Response(json.dumps({"count": len(sirets), "next": nxt, "previous": None,
                                    "results": results}), content_type="application/json")

    server.expect_request("/search").respond_with_handler(search)
    server.expect_request("/api/v1/siaes/").respond_with_handler(siaes)

    # data·inclusion: ~100,000 structures of which the SIAE
    all_sirets = [s for v in by_dep.values() for s in v]
    n_all = max(100_000, len(all_sirets))
    df = pd.DataFrame({
        "id": [f"src--{i}" for i in range(n_all)],
        "nom": [f"Structure {i}" for i in range(n_all)],
        "reseaux_porteurs": [["aci"] if i < len(all_sirets) else ["france-travail"]
                             for i in range(n_all)],
        "siret": [all_sirets[i] if i < len(all_sirets) else "" for i in range(n_all)],
        "code_postal": ["69003"] * n_all, "commune": ["Lyon"] * n_all,
    })
    buf = io.BytesIO()
    df.to_parquet(buf)
    server.expect_request("/api/1/datasets/6233723c2c1e4a54af2f6b2d/").respond_with_json(
        {"resources": [{"title": "structures-inclusion-2026-11-02", "format": "parquet",
                        "url": f"{base}/f.parquet"}]})
    server.expect_request("/f.parquet").respond_with_data(buf.getvalue())

    def run(name, s, shaper):
        before = len(server.log)
        t0 = time.perf_counter()
        (payload,) = fetch_payloads(s, "SIAE-Atlas/bench")
        fetch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = len(shaper(payload.data).rows)
        shape_s = time.perf_counter() - t0
        requests = len(server.log) - before
        print(f"{name:<24}{requests:>9}{fetch_s:>10.1f}{shape_s:>10.2f}{rows:>9}"
              f"{len(payload.data) / 1e6:>9.1f}")
        return requests

    print(f"national run against a local server, {args.siae} SIAE in {len(DEPARTEMENTS)} "
          "départements")
    print(f"{'source':<24}{'requests':>9}{'fetch s':>10}{'shape s':>10}{'rows':>9}{'MB':>9}")
    rate = 1000.0 if args.fast else RECHERCHE_RATE_PER_SECOND
    n = run("recherche_entreprises", spec("recherche_entreprises", base, rate_per_second=rate),
            recherche_entreprises_table)
    print(f"  at {RECHERCHE_RATE_PER_SECOND:g} requests/s: {n / RECHERCHE_RATE_PER_SECOND:.0f} s")
    n = run("emplois", spec("emplois", base, rate_per_minute=60000.0), emplois_table)
    print(f"  at {EMPLOIS_RATE_PER_MINUTE:g} requests/min (the anonymous limit is 12): "
          f"{n / EMPLOIS_RATE_PER_MINUTE:.1f} min")
    run("datainclusion", spec("datainclusion", base),
        lambda data: datainclusion_table(data, "parquet"))
    server.clear()
    server.stop()


if __name__ == "__main__":
    main()
