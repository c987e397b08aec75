"""Build a labelled set of real records for `siae evaluate --truth`, from ../shared/data.

The two public services' copies of the same 458 Auvergne-Rhône-Alpes structures (les emplois
de l'inclusion, le marché de l'inclusion) become three sources in the real formats:

- `emplois.json`: les emplois' `/api/v1/siaes/` page, with SIRETs;
- `marche.csv`: a partner-style list from le marché's copy, as regional exports are: a third
  of the SIRETs removed, a few mistyped (they fail Luhn) or filled with zeros, former
  commune names (a commune déléguée's) where the commune is a commune nouvelle;
- `annuaire.json`: the API Recherche d'entreprises' answer, kinds per company (SIREN), so
  that a company's sister establishments carry each other's kinds.

`truth.csv` says which place each record describes (the structure's id in both services)
and the place's real kinds. Nothing here is committed: the set is rebuilt from ../shared
when needed (the test suite does it in a temporary folder).

    uv run python scripts/make_truth_set.py --out /tmp/truth
    uv run siae evaluate --truth /tmp/truth/truth.csv --sources /tmp/truth/sources.toml
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
COG = ROOT / "warehouse" / "cog" / "decoupage.csv.gz"
SIAE = ("ACI", "AI", "EI", "ETTI", "EITI")

SOURCES_TOML = """# Labelled records from ../shared/data (scripts/make_truth_set.py)
[defaults]
kinds = ["ACI", "AI", "EI", "ETTI", "EITI"]

[sources.emplois]
kind = "emplois"
path = "emplois.json"
priority = 55

[sources.annuaire]
kind = "recherche_entreprises"
path = "annuaire.json"
priority = 45

[sources.marche]
kind = "file"
path = "marche.csv"
priority = 40
[sources.marche.columns]
source_id = "id"
siret = "SIRET"
nom = "Raison sociale"
enseigne = "Enseigne"
adresse = "Adresse"
code_postal = "CP"
commune = "Ville"
types = "Type"
telephone = "Téléphone"
courriel = "Courriel"
site_web = "Site"
latitude = "Latitude"
longitude = "Longitude"

[geocoder]
enabled = false
"""


def _draw(pk: int, salt: str, seed: int = 0) -> float:
    """A deterministic number in [0, 1) per record, purpose and seed."""
    return int(hashlib.sha256(f"{seed}:{salt}:{pk}".encode()).hexdigest()[:8], 16) / 16**8


def _coords(f: dict) -> tuple[str, str]:
    m = re.search(r"POINT \(([-\d.]+) ([-\d.]+)\)", f.get("coords") or "")
    return (m.group(2), m.group(1)) if m else ("", "")


def _mistype(siret: str, draw: float) -> str:
    """One digit changed anywhere (the Luhn check then fails), or two neighbours swapped."""
    i = int(draw * 13)
    if draw < 0.3 and siret[i] != siret[i + 1]:
        swapped = siret[:i] + siret[i + 1] + siret[i] + siret[i + 2:]
        if swapped != siret:
            return swapped
    return siret[:i] + str((int(siret[i]) + 3) % 10) + siret[i + 1:]


def _former_names() -> dict[tuple[str, str], str]:
    """(postcode, today's name) → the name of one of its communes déléguées."""
    with gzip.open(COG, "rt", encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    current = {r["code"]: r for r in rows if r["type"] == "COM"}
    out = {}
    for r in rows:
        parent = current.get(r["chef_lieu"])
        if r["type"] == "COMD" and parent and r["nom"] != parent["nom"]:
            for cp in parent["codes_postaux"].split("|"):
                out.setdefault((cp, parent["nom"]), r["nom"])
    return out


def build(out: Path, shared: Path = SHARED, seed: int = 0) -> dict[str, int]:
    """Write the set into `out`; returns counts of what was perturbed."""
    emplois = [r for r in json.loads((shared / "aura-emplois-siaes.json").read_text())]
    marche = {r["pk"]: r["fields"] for r in json.loads(
        (shared / "aura-lemarche-siaes.json").read_text())}
    out.mkdir(parents=True, exist_ok=True)
    former = _former_names()
    counts = defaultdict(int)
    truth = []

    results = []
    for r in emplois:
        f = r["fields"]
        results.append({
            "id": r["pk"], "siret": f["siret"], "type": f["kind"], "raison_sociale": f["name"],
            "enseigne": f["brand"], "telephone": f["phone"], "courriel": f["email"],
            "site_web": f["website"], "description": f["description"],
            "addresse_ligne_1": f["address_line_1"], "addresse_ligne_2": f["address_line_2"],
            "code_postal": f["post_code"], "ville": f["city"], "departement": f["department"],
            "cree_le": f["created_at"], "mis_a_jour_le": f["updated_at"], "postes": []})
        truth.append(("emplois", str(r["pk"]), f"p{r['pk']}", f["kind"]))
    (out / "emplois.json").write_text(json.dumps(
        {"count": len(results), "next": None, "previous": None, "results": results},
        ensure_ascii=False, indent=1), encoding="utf-8")

    header = ["id", "SIRET", "Raison sociale", "Enseigne", "Adresse", "CP", "Ville", "Type",
              "Téléphone", "Courriel", "Site", "Latitude", "Longitude"]
    with (out / "marche.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(header)
        for pk, f in sorted(marche.items()):
            siret = f["siret"]
            if _draw(pk, "siret", seed) < 1 / 3:
                siret, counts["siret_removed"] = "", counts["siret_removed"] + 1
            elif _draw(pk, "typo", seed) < 0.04:
                siret = _mistype(siret, _draw(pk, "where", seed))
                counts["siret_mistyped"] += 1
            elif _draw(pk, "filler", seed) < 0.015:
                siret, counts["siret_filler"] = "00000000000000", counts["siret_filler"] + 1
            city = f["city"]
            if (f["post_code"], city) in former and _draw(pk, "city", seed) < 0.5:
                city, counts["former_commune"] = former[(f["post_code"], city)], \
                    counts["former_commune"] + 1
            lat, lon = _coords(f)
            writer.writerow([f"m{pk}", siret, f["name"], f["brand"], f["address"],
                             f["post_code"], city, f["kind"], f["phone"], f["email"],
                             f["website"], lat, lon])
            truth.append(("marche", f"m{pk}", f"p{pk}", f["kind"]))

    companies: dict[str, list] = defaultdict(list)
    for r in emplois:
        if r["fields"]["kind"] in SIAE:
            companies[r["fields"]["siret"][:9]].append(r)
    pages = []
    for siren, members in sorted(companies.items()):
        etabs = []
        for r in members:
            f = r["fields"]
            lat, lon = _coords(f)
            number = re.match(r"^(\d+)\s*(.*)$", f["address_line_1"] or "")
            etabs.append({
                "siret": f["siret"], "numero_voie": number.group(1) if number else "",
                "libelle_voie": (number.group(2) if number else f["address_line_1"]).upper(),
                "code_postal": f["post_code"], "libelle_commune": f["city"].upper(),
                "latitude": lat, "longitude": lon, "etat_administratif": "A",
                "est_siege": r is members[0]})
            truth.append(("annuaire", f["siret"], f"p{r['pk']}", f["kind"]))
        kinds = ", ".join(sorted({r["fields"]["kind"] for r in members}))
        counts["companies_several_kinds"] += "," in kinds
        pages.append({"url": f"search?siren={siren}", "body": {
            "results": [{"siren": siren, "nom_complet": members[0]["fields"]["name"],
                         "siege": etabs[0], "matching_etablissements": etabs,
                         "nombre_etablissements_ouverts": len(etabs),
                         "complements": {"est_siae": True, "type_siae": kinds}}],
            "total_results": 1, "page": 1, "per_page": 25, "total_pages": 1}})
    (out / "annuaire.json").write_text(json.dumps({"pages": pages}, ensure_ascii=False),
                                       encoding="utf-8")

    with (out / "truth.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "source_id", "place", "kinds"])
        writer.writerows(truth)
    (out / "sources.toml").write_text(SOURCES_TOML, encoding="utf-8")
    counts["records"] = len(truth)
    return dict(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--seed", type=int, default=0, help="another draw of the perturbations")
    args = parser.parse_args()
    counts = build(args.out, args.shared, args.seed)
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
