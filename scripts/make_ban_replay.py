"""Build samples/ban_answers.csv: the BAN answers the offline demo replays instead of calling
the Géoplateforme.

Run after `uv run siae sync --demo` (it reads the demo's structures from the warehouse). The
answers are real BAN results: les emplois de l'inclusion geocoded these addresses with the BAN
(coordinates and score in ../shared/data). The BAN's `result_type` is not in that data: it is
set to `housenumber` when the address starts with a number, `street` otherwise.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from transforms.geocoding import QUERY_COLUMNS, make_query  # noqa: E402
from warehouse.db import connect, fetch_frame  # noqa: E402
from warehouse.paths import WarehousePaths  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "aura-emplois-siaes.json"


def main() -> None:
    real = {}
    for r in json.loads(SHARED.read_text()):
        f = r["fields"]
        m = re.search(r"POINT \(([-\d.]+) ([-\d.]+)\)", f.get("coords") or "")
        if m and f.get("geocoding_score") is not None:
            real[f["siret"]] = (float(m.group(1)), float(m.group(2)), f["geocoding_score"])
    with connect(WarehousePaths.resolve().database, read_only=True) as con:
        structures = fetch_frame(con, "SELECT * FROM core.structures ORDER BY structure_id")
    rows = []
    for s in structures.to_dict("records"):
        q = make_query(s)
        if q is None or s["siret"] not in real:
            continue
        lon, lat, score = real[s["siret"]]
        kind = "housenumber" if re.match(r"\d", q.adresse) else "street"
        rows.append({"adresse": q.adresse, "code_postal": q.code_postal, "commune": q.commune,
                     "code_insee": q.code_insee, "latitude": f"{lat:.6f}",
                     "longitude": f"{lon:.6f}", "result_score": f"{score:.4f}",
                     "result_type": kind, "result_label": f"{q.adresse} {q.code_postal} "
                     f"{q.commune}", "result_citycode": q.code_insee, "result_status": "ok"})
    out = ROOT / "samples" / "ban_answers.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, [*QUERY_COLUMNS, "code_insee", "latitude", "longitude",
                                     "result_score", "result_type", "result_label",
                                     "result_citycode", "result_status"])
        writer.writeheader()
        unique = {(r["adresse"], r["code_postal"], r["commune"], r["code_insee"]): r for r in rows}
        writer.writerows(sorted(unique.values(), key=lambda r: (r["code_insee"], r["adresse"])))
    print(f"{out}: {len(unique)} answers")


if __name__ == "__main__":
    main()
