"""Build the offline demo samples in samples/ from the real AURA records in ../shared/data.

Run once by a developer (`uv run python scripts/make_samples.py`); the outputs are committed,
the shared data are not. Names, SIRETs and addresses are the real public ones; phones use the
ARCEP range reserved for fiction (04 65 71 xx xx) and e-mails the reserved `.example` domain.
The mess of real partner files is added on purpose: see samples/README.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import unicodedata
from pathlib import Path

from openpyxl import Workbook

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "aura-emplois-siaes.json"
OUT = ROOT / "samples"
LABELS = {
    "ACI": "Atelier chantier d'insertion",
    "AI": "Association intermédiaire",
    "EI": "Entreprise d'insertion",
    "ETTI": "Entreprise de travail temporaire d'insertion",
    "EITI": "Entreprise d'insertion par le travail indépendant",
    "GEIQ": "Groupement d'employeurs pour l'insertion et la qualification",
}


def slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:30]


def phone(pk: int) -> str:
    return f"04 65 71 {pk // 100 % 100:02d} {pk % 100:02d}"


def coords(f: dict) -> tuple[float, float] | None:
    m = re.search(r"POINT \(([-\d.]+) ([-\d.]+)\)", f.get("coords") or "")
    return (float(m.group(1)), float(m.group(2))) if m else None


def main() -> None:
    data = sorted(json.loads(SHARED.read_text()), key=lambda r: r["pk"])
    picked = [r for r in data[::9] if r["fields"]["kind"] != "GEIQ"][:50]
    geiq = next(r for r in data if r["fields"]["kind"] == "GEIQ")
    OUT.mkdir(exist_ok=True)

    # A. A regional network's CSV: Windows-1252, ';', a title row, SIRETs with spaces,
    # postcodes that lost their leading zero, full kind labels, an extra column.
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    w.writerow(["Liste des SIAE adhérentes — Réseau IAE Auvergne-Rhône-Alpes", "", "", ""])
    w.writerow([])
    w.writerow(
        [
            "N° SIRET",
            "Raison sociale",
            "Adresse",
            "Complément",
            "CP",
            "Ville",
            "Type de structure",
            "Téléphone",
            "Courriel",
            "Site internet",
            "Mise à jour",
            "Référent réseau",
        ]
    )
    for i, r in enumerate(picked[:30]):
        f = r["fields"]
        s = f["siret"]
        cp = f["post_code"].lstrip("0") if i % 4 == 0 else f["post_code"]
        email = f"accueil@{slug(f['name'])}.example" if i != 7 else "accueil(at)example"
        w.writerow(
            [
                f"{s[:3]} {s[3:6]} {s[6:9]} {s[9:]}",
                f["name"],
                f["address_line_1"],
                f["address_line_2"],
                cp,
                f["city"].upper(),
                LABELS[f["kind"]],
                phone(r["pk"]),
                email,
                f"www.{slug(f['name'])}.example" if i % 3 == 0 else "",
                dt.date.fromisoformat(f["updated_at"][:10]).strftime("%d/%m/%Y"),
                "Mme Martin" if i % 2 else "M. Bernard",
            ]
        )
    w.writerow(
        [
            "",
            "",
            "12 rue de la Paix",
            "",
            "69003",
            "LYON",
            "Entreprise d'insertion",
            "",
            "",
            "",
            "01/03/2024",
            "",
        ]
    )  # no name: rejected
    w.writerow(
        [
            "421 234 567 00012",
            "Recyclerie du Forez",
            "3 rue Neuve",
            "",
            "42600",
            "Montbrison",
            "Atelier chantier d'insertion",
            "",
            "",
            "",
            "",
            "",
        ]
    )  # Luhn fails
    w.writerow(
        [
            "",
            "Régie de quartier Les Pentes",
            "5 montée de la Grande Côte",
            "",
            "69361",
            "LYON CEDEX 01",
            "Régie de quartier",
            "",
            "",
            "",
            "",
            "",
        ]
    )  # unknown kind
    (OUT / "reseau_iae_aura.csv").write_bytes(buf.getvalue().encode("cp1252"))

    # B. A DREETS workbook: title rows, SIRET and postcode stored as numbers, Excel dates,
    # coordinates (one pair swapped, one 0,0), kinds as codes with several per structure.
    wb = Workbook()
    ws = wb.active
    ws.title = "SIAE conventionnées"
    ws.append(["DREETS Auvergne-Rhône-Alpes — structures conventionnées IAE"])
    ws.append([f"Extraction du {dt.date(2026, 11, 2):%d/%m/%Y}"])
    ws.append([])
    ws.append(
        [
            "SIRET",
            "Dénomination",
            "Enseigne",
            "Mesure",
            "Adresse",
            "Code postal",
            "Commune",
            "Latitude",
            "Longitude",
            "Dernière mise à jour",
        ]
    )
    for i, r in enumerate(picked[15:40]):
        f = r["fields"]
        point = coords(f)
        lon, lat = point if point else (None, None)
        if i == 1 and point:
            lon, lat = lat, lon  # swapped by the publisher
        if i == 2:
            lon, lat = 0.0, 0.0
        kind = f["kind"] + (", ETTI" if i == 3 else "")
        siret = int(f["siret"]) if i != 5 else f"{int(f['siret']):.2E}"
        ws.append(
            [
                siret,
                f["name"],
                f["brand"] or None,
                kind,
                f["address_line_1"],
                int(f["post_code"]),
                f["city"],
                lat,
                lon,
                dt.datetime.fromisoformat(f["updated_at"][:19]),
            ]
        )
    wb.save(OUT / "dreets_aura.xlsx")

    # C. Les emplois de l'inclusion's /api/v1/siaes/ page shape (no coordinates), with their
    # `addresse_ligne_*` spelling, a GEIQ (not published by default) and an antenne whose
    # SIRET is an ASP placeholder (SIREN + 999 + 2 digits).
    results = []
    for i, r in enumerate([*picked[28:50], geiq]):
        f = r["fields"]
        line2 = f["address_line_1"] if i == 4 else f["address_line_2"]
        results.append(
            {
                "id": f"{r['pk']:08d}-0000-4000-8000-000000000000",
                "siret": f["siret"],
                "type": f["kind"],
                "raison_sociale": f["name"],
                "enseigne": f["brand"],
                "telephone": phone(r["pk"]) if i % 2 else "",
                "courriel": f"contact@{slug(f['name'])}.example",
                "site_web": "",
                "description": "",
                "addresse_ligne_1": f["address_line_1"],
                "addresse_ligne_2": line2,
                "code_postal": f["post_code"],
                "ville": f["city"],
                "departement": "69" if i == 6 else f["department"],
                "cree_le": f["created_at"],
                "mis_a_jour_le": f["updated_at"],
                "postes": [],
            }
        )
    base = picked[45]["fields"]
    results.append(
        {
            "id": "99999999-0000-4000-8000-000000000001",
            "siret": base["siret"][:9] + "99901",
            "type": "ACI",
            "raison_sociale": base["name"],
            "enseigne": "Antenne de Vienne",
            "telephone": "",
            "courriel": "",
            "site_web": "",
            "description": "",
            "addresse_ligne_1": "2 place Charles de Gaulle",
            "addresse_ligne_2": "",
            "code_postal": "38200",
            "ville": "Vienne",
            "departement": "38",
            "cree_le": "2024-05-02T09:00:00Z",
            "mis_a_jour_le": "2025-01-15T09:00:00Z",
            "postes": [],
        }
    )
    page = {"count": len(results), "next": None, "previous": None, "results": results}
    (OUT / "emplois_aura.json").write_text(
        json.dumps(page, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
