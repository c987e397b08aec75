"""Shapers of the public sources' payloads: fields read by name, failures named."""

import datetime as dt
import gzip
import io
import json

import pandas as pd
import pytest

from transforms.apis import (
    active_kinds,
    asp_table,
    datainclusion_table,
    emplois_table,
    network_kinds,
    read_fluxiae,
    recherche_entreprises_table,
)
from transforms.readers import ReadError


def rows_of(table):
    return [dict(zip(table.columns, r, strict=True)) for r in table.rows]


@pytest.mark.parametrize(
    ("raw", "kinds"),
    [("aci, ei", ["ACI", "EI"]), ('["etti"]', ["ETTI"]), ("{ai,geiq}", ["AI", "GEIQ"]),
     ("france-travail", []), ("", [])],
)
def test_network_kinds(raw, kinds):
    assert network_kinds(raw) == kinds


def test_datainclusion_keeps_siae_rows_only():
    df = pd.DataFrame({
        "id": ["emplois--1", "france-travail--2", "emplois--3"],
        "nom": ["Atelier", "Agence", "AI sans réseau"],
        "reseaux_porteurs": [["aci", "etti"], ["france-travail"], []],
        "siret": ["19070916200019", "", ""], "code_postal": ["07200", "69003", "69003"],
        "commune": ["Aubenas", "Lyon", "Lyon"], "latitude": [44.6, None, None],
    })
    buf = io.BytesIO()
    df.to_parquet(buf)
    table = datainclusion_table(buf.getvalue(), "parquet")
    (row,) = rows_of(table)
    assert (row["source_id"], row["types"], row["latitude"]) == ("emplois--1", "ACI, ETTI",
                                                                 "44.6")
    assert table.row_numbers == [1]


def test_datainclusion_missing_column_is_named():
    with pytest.raises(ReadError, match="siret"):
        datainclusion_table(b"id,nom,reseaux_porteurs\n1,A,aci\n", "csv")


def page(results, n=1, total=1):
    return {"results": results, "page": n, "total_pages": total, "total_results": len(results)}


def company(siren, kinds, etabs):
    return {"siren": siren, "nom_complet": f"SIAE {siren}", "siege": etabs[0],
            "matching_etablissements": etabs, "complements": {"est_siae": True,
                                                              "type_siae": kinds}}


def etab(siret, **kw):
    base = {"siret": siret, "numero_voie": "3", "type_voie": "RUE", "libelle_voie": "NEUVE",
            "code_postal": "07200", "commune": "07019", "libelle_commune": "AUBENAS",
            "latitude": "44.6", "longitude": "4.39", "etat_administratif": "A"}
    return {**base, **kw}


def test_recherche_entreprises_one_row_per_establishment_with_siren_kinds():
    doc = {"pages": [
        {"url": "u1", "body": page([company("190709162", "ACI, EI", [
            etab("19070916200019"), etab("19070916200027", etat_administratif="F",
                                         date_fermeture="2024-06-30")])], 1, 2)},
        {"url": "u2", "body": page([company("190709162", "ACI, EI",
                                            [etab("19070916200019")])], 2, 2)},
    ]}
    rows = rows_of(recherche_entreprises_table(json.dumps(doc).encode()))
    assert [r["siret"] for r in rows] == ["19070916200019", "19070916200027"]
    assert rows[0]["types"] == "ACI, EI" and rows[0]["adresse"] == "3 RUE NEUVE"
    assert rows[0]["code_insee"] == "07019"
    assert (rows[1]["etat_administratif"], rows[1]["date_fermeture"]) == ("F", "2024-06-30")


def test_recherche_entreprises_missing_field_fails_with_its_name():
    bad = {"pages": [{"url": "u", "body": page([{"siren": "1", "siege": {}}])}]}
    with pytest.raises(ReadError, match="nom_complet"):
        recherche_entreprises_table(json.dumps(bad).encode())


def test_emplois_public_and_token_shapes():
    public = page([{"id": 1, "siret": "19070916200019", "type": "ACI", "raison_sociale": "A",
                    "addresse_ligne_1": "3 rue Neuve", "code_postal": "07200",
                    "ville": "Aubenas", "mis_a_jour_le": "2024-01-01T00:00:00Z"}])
    token = page([{"id": "x", "siret": "19070916200019", "kind": "EI", "nom": "B",
                   "adresse": "1 place", "commune": "Lyon", "latitude": 45.7,
                   "longitude": 4.8, "date_maj": "2024-02-01"}])
    a = rows_of(emplois_table(json.dumps(public).encode()))[0]
    b = rows_of(emplois_table(json.dumps({"pages": [{"url": "u", "body": token}]}).encode()))[0]
    assert (a["nom"], a["types"], a["adresse"], a["commune"]) == ("A", "ACI", "3 rue Neuve",
                                                                  "Aubenas")
    assert (b["nom"], b["types"], b["latitude"], b["date_maj"]) == ("B", "EI", "45.7",
                                                                    "2024-02-01")


def test_emplois_html_instead_of_json_is_a_read_error():
    with pytest.raises(ReadError, match="not valid JSON"):
        emplois_table(b"<html><body>Maintenance</body></html>")


STRUCTURE = ("DEB|fluxIAE_Structure|02112026\n"
             "structure_id_siae|structure_siret_actualise|structure_siret_signature|"
             "structure_denomination|structure_adresse_gestion_numero|"
             "structure_adresse_gestion_nom_voie|structure_adresse_gestion_cp|"
             "structure_adresse_gestion_commune|structure_adresse_gestion_telephone|"
             "structure_contact_nom\n"
             "11|19070916200019|19070916200019|ATELIER|3|rue Neuve|07200|Aubenas|0465711234|"
             "Mme X\n"
             "12||42385519600014|ANTENNE|1|place|69003|Lyon|0465711235|M. Y\n"
             "FIN|2\n")
ANNEXES = ("af_id_structure|af_mesure_dispositif_code|af_date_fin_effet|"
           "af_etat_annexe_financiere_code\n"
           "11|ACI_DC|31/12/2026|VALIDE\n"
           "11|ETTI_DC||PROVISOIRE\n"
           "11|EI_DC|31/12/2024|VALIDE\n"
           "11|AI_MP|31/12/2026|VALIDE\n"
           "12|EI_DC|31/12/2026|ANNULE\n")
TODAY = dt.date(2026, 6, 1)


def test_active_kinds_from_annexes():
    annexes = read_fluxiae(ANNEXES.encode(), "annexes.csv", ["af_id_structure"])
    assert active_kinds(annexes, TODAY) == {"11": ["ACI", "ETTI"]}


def test_asp_table_kinds_address_and_no_contact_columns():
    table = asp_table(gzip.compress(STRUCTURE.encode()), "s.csv.gz", ANNEXES.encode(),
                      "a.csv", TODAY)
    a, b = rows_of(table)
    assert (a["source_id"], a["types"], a["adresse"], a["code_postal"]) == (
        "11", "ACI, ETTI", "3 rue Neuve", "07200")
    assert b["siret"] == "42385519600014" and b["types"] == ""  # signature used, no kind
    assert not {"telephone", "courriel"} & set(table.columns)
    assert "Mme X" not in json.dumps(table.rows)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (gzip.compress(STRUCTURE.encode())[:-10], "truncated or corrupt gzip"),
        (STRUCTURE.replace("structure_denomination", "denomination").encode(),
         "structure_denomination missing"),
        (STRUCTURE.replace("|Mme X", "").encode(), "line 3 has 9 fields for 10"),
    ],
    ids=["truncated-gzip", "renamed-column", "short-line"],
)
def test_broken_asp_files_say_what_is_wrong(payload, message):
    with pytest.raises(ReadError, match=message):
        asp_table(payload, "s.csv", ANNEXES.encode(), "a.csv", TODAY)


def test_asp_file_without_fin_line_is_read():
    rows = read_fluxiae(STRUCTURE.replace("FIN|2\n", "").encode(), "s.csv",
                        ["structure_id_siae"])
    assert len(rows) == 2


def test_a_description_from_les_emplois_reaches_the_golden_record(tiny_communes):
    """The field added through the field table alone: shaped, staged, merged."""
    from transforms.merge import merge_records
    from transforms.spec import SourceSpec
    from transforms.staging import stage_table

    body = page([{"id": 7, "siret": "19070916200019", "type": "ACI", "raison_sociale": "A",
                  "description": "  Chantier   maraîchage bio ", "code_postal": "07200",
                  "ville": "Aubenas"}])
    spec = SourceSpec(name="emplois", kind="emplois", path="x.json")
    staged = stage_table(emplois_table(json.dumps(body).encode()), spec, tiny_communes, ("ACI",))
    assert staged.records.loc[0, "description"] == "Chantier maraîchage bio"
    merged = merge_records(staged.records, {"emplois": 50}, {})
    assert merged.structures.loc[0, "description"] == "Chantier maraîchage bio"


@pytest.mark.parametrize(
    ("etabs", "declared", "types", "candidates"),
    [
        ([etab("19070916200019")], None, ["ACI, EI"], [""]),
        ([etab("19070916200019"), etab("19070916200027")], None, ["", ""],
         ["ACI, EI", "ACI, EI"]),
        ([etab("19070916200019")], 3, [""], ["ACI, EI"]),  # the API counts 3 open ones
        ([etab("19070916200019"), etab("19070916200027", etat_administratif="F")], None,
         ["ACI, EI", ""], ["", "ACI, EI"]),
    ],
    ids=["sole-establishment", "two-open", "declared-count", "one-open-one-closed"],
)
def test_company_kinds_go_to_an_establishment_only_when_they_can_only_be_its(
        etabs, declared, types, candidates):
    item = company("190709162", "ACI, EI", etabs)
    if declared is not None:
        item["nombre_etablissements_ouverts"] = declared
    rows = rows_of(recherche_entreprises_table(json.dumps(page([item])).encode()))
    assert [r["types"] for r in rows] == types
    assert [r["types_candidats"] for r in rows] == candidates


def test_unconfirmed_kinds_are_kept_apart_and_confirmed_by_another_source(tiny_communes):
    from transforms.merge import merge_records
    from transforms.spec import SourceSpec
    from transforms.staging import stage_table

    item = company("190709162", "ACI, EI", [etab("19070916200019"), etab("19070916200027")])
    spec = SourceSpec(name="annuaire", kind="recherche_entreprises", path="x.json")
    staged = stage_table(recherche_entreprises_table(json.dumps(page([item])).encode()), spec,
                         tiny_communes, ("ACI", "EI"))
    assert list(staged.warnings["reason"]) == ["type_non_confirme"] * 2
    records = staged.records.copy()
    # another source says the first establishment is an EI
    other = records.iloc[[0]].copy()
    other["source"], other["source_id"] = "emplois", "e1"
    other.at[other.index[0], "types"], other.at[other.index[0], "types_candidats"] = ["EI"], []
    merged = merge_records(pd.concat([records, other], ignore_index=True),
                           {"annuaire": 45, "emplois": 50}, {})
    by_siret = {s["siret"]: s for s in merged.structures.to_dict("records")}
    confirmed, unconfirmed = by_siret["19070916200019"], by_siret["19070916200027"]
    assert (confirmed["types"], confirmed["types_candidats"]) == (["EI"], ["ACI"])
    assert (unconfirmed["types"], unconfirmed["types_candidats"]) == ([], ["ACI", "EI"])
    provenance = json.loads(confirmed["provenance"])
    assert provenance["types:EI"] == "emplois" and provenance["types_candidats:ACI"] == "annuaire"
