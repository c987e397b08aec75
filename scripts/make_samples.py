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
    # A structure the network lists without SIRET, under a variant of the name les emplois
    # gives it: the matcher, not a rule, must make them one place.
    f = picked[42]["fields"]
    w.writerow(["", f"Association {f['name'].title()}", f["address_line_1"], "", f["post_code"],
                f["city"].upper(), LABELS[f["kind"]], "", "", "", "", ""])
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
                "postes": postes(i),
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
    more_samples(data, picked)


def insee_codes(records: list[dict]) -> dict[str, str]:
    """SIRET → code INSEE, resolved with the project's own commune reference."""
    import duckdb

    from warehouse.db import apply_schema
    from warehouse.reference import commune_index, ensure_communes

    con = duckdb.connect()
    apply_schema(con)
    ensure_communes(con)
    idx = commune_index(con)
    out = {}
    for r in records:
        f = r["fields"]
        place = idx.resolve(f["post_code"], f["city"])
        if place:
            out[f["siret"]] = place.code_arrondissement or place.code_insee
    return out


# Open positions in les emplois' shape: ROME codes and titles of the jobs SIAE really offer
# (ROME v4); `recrutement_ouvert` is a string there.
POSTES = [("A1203", "Ouvrier / Ouvrière d'entretien des espaces verts"),
          ("K2304", "Agent / Agente de tri des déchets"),
          ("A1414", "Ouvrier / Ouvrière maraîcher"),
          ("N1103", "Manutentionnaire"),
          ("K2204", "Agent / Agente d'entretien de locaux"),
          ("G1603", "Commis / Commise de cuisine"),
          ("F1703", "Maçon / Maçonne"),
          ("D1507", "Employé / Employée de rayon")]


def postes(i: int) -> list[dict]:
    """Positions of the i-th structure of les emplois' sample: a few recruit, one has only a
    closed position, the others publish none."""
    if i % 3:
        return []
    out = []
    for k in range(1 + i % 2):
        rome, title = POSTES[(i + k) % len(POSTES)]
        out.append({"id": 1000 + 10 * i + k, "rome": rome, "appellation_modifiee": title,
                    "recrutement_ouvert": "False" if i == 9 else "True",
                    "cree_le": "2026-09-01T08:00:00Z", "mis_a_jour_le": "2026-10-15T08:00:00Z"})
    return out


def asp_zip(name: str, data: bytes) -> bytes:
    """A one-member ZIP archive with a fixed date, so that the sample is reproducible."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 2, 6, 30, 0)), data,
                         compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def sibling_siret(siret: str, nic: int) -> str:
    """Another valid SIRET of the same SIREN (an antenne)."""
    from stdnum import luhn

    body = f"{siret[:9]}{nic:04d}"
    return body + luhn.calc_check_digit(body)


def split_street(line: str) -> tuple[str, str]:
    m = re.match(r"^(\d+)\s*,?\s*(.*)$", line.strip())
    return (m.group(1), m.group(2)) if m else ("", line.strip())


def more_samples(data: list[dict], picked: list[dict]) -> None:
    """Samples of the public sources' own shapes: data·inclusion, Recherche d'entreprises,
    and the ASP fluxIAE export."""

    import pandas as pd

    others = [r for r in data[4::9] if r["fields"]["kind"] != "GEIQ"]
    insee = insee_codes(picked + others)

    # D. data·inclusion "structures-inclusion" parquet: SIAE rows among other services, an AI
    # left without reseaux_porteurs (their known quirk), lists in a list column.
    rows = []
    for i, r in enumerate(picked[5:20] + others[:10]):
        f = r["fields"]
        point = coords(f)
        rows.append({
            "id": f"emplois-de-linclusion--{r['pk']}", "source": "emplois-de-linclusion",
            "nom": f["name"].title(), "date_maj": f["updated_at"][:10], "description": None,
            "lien_source": None, "siret": f["siret"], "commune": f["city"],
            "code_postal": f["post_code"], "code_insee": insee.get(f["siret"]),
            "adresse": f["address_line_1"], "complement_adresse": f["address_line_2"] or None,
            "longitude": point[0] if point else None, "latitude": point[1] if point else None,
            "telephone": None, "courriel": f"contact@{slug(f['name'])}.example",
            "site_web": None, "horaires_accueil": None, "accessibilite_lieu": None,
            "reseaux_porteurs": [] if i == 3 else [f["kind"].lower()],
        })
    rows.append({**rows[0], "id": "france-travail--69001", "source": "france-travail",
                 "nom": "France Travail Lyon Part-Dieu", "siret": "13000548100010",
                 "reseaux_porteurs": ["france-travail"]})
    pd.DataFrame(rows).to_parquet(OUT / "structures-inclusion-2026-11-02.parquet", index=False)

    # E. API Recherche d'entreprises pages (département filter): one result per SIREN with its
    # siège and matching establishments, kinds per SIREN, coordinates as strings, one antenne
    # (same SIREN, its own SIRET) and one closed establishment.
    def establishment(f, siret, etat="A", closed=None, siege=True):
        point = coords(f)
        num, street = split_street(f["address_line_1"])
        return {"siret": siret, "adresse": f"{f['address_line_1']} {f['post_code']} "
                f"{f['city'].upper()}", "numero_voie": num or None, "type_voie": None,
                "libelle_voie": street.upper(), "complement_adresse": None,
                "code_postal": f["post_code"], "commune": insee.get(f["siret"]),
                "libelle_commune": f["city"].upper(),
                "latitude": f"{point[1]}" if point else None,
                "longitude": f"{point[0]}" if point else None,
                "etat_administratif": etat, "date_fermeture": closed, "est_siege": siege,
                "liste_enseignes": [f["brand"].upper()] if f["brand"] else None}

    results = []
    for i, r in enumerate(picked[10:22] + others[10:16]):
        f = r["fields"]
        kinds = f["kind"] + (", EI" if i == 2 else "")
        etabs = [establishment(f, f["siret"])]
        if i == 4:
            antenne = dict(f, address_line_1="14 avenue Jean Jaurès")
            etabs.append(establishment(antenne, sibling_siret(f["siret"], 9871), siege=False))
        if i == 6:
            etabs = [establishment(f, f["siret"], "F", "2025-06-30")]
        results.append({"siren": f["siret"][:9], "nom_complet": f["name"],
                        "nom_raison_sociale": f["name"], "siege": etabs[0],
                        "matching_etablissements": etabs,
                        "complements": {"est_siae": True, "type_siae": kinds},
                        "date_mise_a_jour": f["updated_at"][:10]})
    pages = [{"url": f"https://recherche-entreprises.api.gouv.fr/search?page={n}",
              "body": {"results": results[(n - 1) * 9:n * 9], "total_results": len(results),
                       "page": n, "per_page": 9, "total_pages": 2}} for n in (1, 2)]
    (OUT / "recherche_entreprises_aura.json").write_text(
        json.dumps({"pages": pages}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    # F. ASP fluxIAE export: Structure (a zip named .csv.gz) and AnnexeFinanciere,
    # pipe-delimited, DEB/FIN lines (FIN missing in one), kinds from active annexes only, a
    # contact column that must never be published.
    sfields = ["structure_id_siae", "structure_siret_actualise", "structure_siret_signature",
               "structure_denomination", "structure_code_naf",
               "structure_adresse_gestion_numero", "structure_adresse_gestion_cplt_num_voie",
               "structure_adresse_gestion_type_voie", "structure_adresse_gestion_nom_voie",
               "structure_adresse_gestion_cp", "structure_adresse_gestion_commune",
               "structure_adresse_gestion_telephone", "structure_adresse_gestion_numero_apt",
               "structure_adresse_gestion_entree", "structure_adresse_gestion_cplt_adresse",
               "structure_code_insee_commune", "structure_contact_nom"]
    lines = ["DEB|fluxIAE_Structure|02112026", "|".join(sfields)]
    annexes = ["DEB|fluxIAE_AnnexeFinanciere|02112026",
               "af_id_annexe_financiere|af_id_structure|af_mesure_dispositif_code|"
               "af_date_debut_effet|af_date_fin_effet|af_etat_annexe_financiere_code"]
    for i, r in enumerate(picked[20:32]):
        f = r["fields"]
        num, street = split_street(f["address_line_1"])
        asp_id = str(3000 + r["pk"])
        lines.append("|".join([asp_id, f["siret"], f["siret"], f["name"], f["naf"], num, "",
                               "", street, f["post_code"], f["city"], phone(r["pk"]), "", "",
                               f["address_line_2"], insee.get(f["siret"], ""),
                               "Mme Dupont"]))
        state, end = ("VALIDE", "31/12/2026")
        if i == 3:
            state, end = ("VALIDE", "31/12/2024")  # expired: no kind, rejected
        measure = f"{f['kind']}_DC"
        annexes.append(f"AF{asp_id}A|{asp_id}|{measure}|01/01/2026|{end}|{state}")
        if i == 5:
            annexes.append(f"AF{asp_id}B|{asp_id}|ETTI_DC|01/07/2026|30/06/2027|PROVISOIRE")
        if i == 6:
            annexes.append(f"AF{asp_id}C|{asp_id}|ACI_MP|01/01/2026|31/12/2026|VALIDE")
    lines.append(f"FIN|{len(lines) - 2}")
    # Named .csv.gz but a ZIP archive holding one CSV, as the ASP really ships it.
    (OUT / "fluxIAE_Structure_02112026_063000.csv.gz").write_bytes(
        asp_zip("fluxIAE_Structure_02112026_063000.csv", "\n".join(lines).encode("utf-8")))
    (OUT / "fluxIAE_AnnexeFinanciere_02112026_063000.csv").write_text(
        "\n".join(annexes) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
