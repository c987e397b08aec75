"""Hostile inputs through the real readers, staging and publication writers (tests/faults/
hostile.py lists them with what must come of them)."""

import csv
import io
import json
import random
from pathlib import Path

import pytest

from tests.faults.hostile import CASES, HEADER, csv_file, row
from transforms.apis import source_table
from transforms.errors import ReadError
from transforms.fields import FIELDS
from transforms.geojson import build_feature_collection
from transforms.publication import FIELD_NAMES, csv_bytes
from transforms.spec import parse_spec
from transforms.staging import stage_table

SPEC = parse_spec("""
[sources.reseau]
kind = "file"
path = "reseau.csv"
[sources.reseau.columns]
nom = "Nom"
siret = "SIRET"
adresse = "Adresse"
code_postal = "CP"
commune = "Ville"
types = "Type"
telephone = "Tel"
courriel = "Mail"
site_web = "Site"
latitude = "Lat"
longitude = "Lon"
""", Path("/tmp/sources.toml")).sources["reseau"]
KINDS = ("ACI", "AI", "EI", "ETTI", "EITI")


def stage(case, communes):
    table = source_table(SPEC, [(case.name, case.data)], None)
    return stage_table(table, SPEC, communes, KINDS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case, tiny_communes, monkeypatch):
    monkeypatch.setenv("SIAE_MAX_UNPACKED_MB", "128")
    if case.error:
        with pytest.raises(ReadError, match=case.error):
            stage(case, tiny_communes)
        return
    staged = stage(case, tiny_communes)
    records = staged.records.to_dict("records")
    assert len(records) == case.kept, staged.rejects.to_dict("records")
    # nothing lost without a word: every row read is kept or refused with its reason
    assert staged.rows_read == len(records) + len(staged.rejects)
    reasons = staged.rejects["reason"].value_counts().to_dict()
    assert reasons == case.rejected
    if case.reject_at:
        first = staged.rejects.iloc[0]
        assert (first["row_number"], first["field"]) == case.reject_at
        assert first["source"] == "reseau" and first["detail"]
        assert len(first["raw"]) < 20_000  # a huge cell is not copied whole
    warned = staged.warnings["reason"].value_counts().to_dict()
    for reason, count in case.warned.items():
        assert warned.get(reason, 0) >= count, warned
    for (i, name), value in case.values.items():
        assert records[i][name] == value, (name, records[i][name])
    # nothing published is mojibake
    for r in records:
        for name in ("nom", "adresse", "commune"):
            assert "Ã" not in (r[name] or "") and "\ufffd" not in (r[name] or "")
    if records:
        published = [{**dict.fromkeys(FIELD_NAMES), **{k: r[k] for k in r if k in FIELD_NAMES},
                      "structure_id": f"s{i}", "sources": ["reseau"]}
                     for i, r in enumerate(records)]
        text = csv_bytes(published).decode("utf-8")
        cells = list(csv.DictReader(io.StringIO(text, newline="")))
        for name, expected in case.csv_cells.items():
            assert cells[0][name] == expected
        # the GeoJSON keeps the exact values and stays valid JSON
        doc = json.loads(build_feature_collection(published)[0])
        for feature in doc["features"]:
            i = int(feature["id"][1:])
            assert feature["properties"]["nom"] == records[i]["nom"]


def test_there_are_at_least_35_hostile_inputs():
    assert len(CASES) >= 35 and len({c.id for c in CASES}) == len(CASES)


# Cells a partner's file may hold in any column: digits of other scripts (which Python's
# isdigit and float take), numbers spreadsheets write, invisible and huge values.
ODD_CELLS = ["١٩٠٧٠٩١٦٢٠٠٠١٩", "1907091620001²", "１９０７０９１６２００１９", "07²00", "٠٧٢٠٠",
             "nan", "NaN", "inf", "-inf", "1e308", "-0", "0x1F", "4,39", "44.62.1", "½",
             "\u202e", "\u200b", "🙂", "0", "00000", "+33", "@", "http://", "javascript:x",
             "ACI,ACI", "ETTI;EI", "31/02/2024", "2024-13-01", " ", "\x7f", "'", "[]",
             "atelier.fr:abc", "9999-12-31", "0001-01-01", "2024-02-30", "-1", "null"]


def test_no_cell_stops_a_source(tiny_communes):
    # whatever a cell holds, its row is staged or refused with a reason: the source never
    # fails for one cell
    # every odd cell in every column alone, then a few of them together
    changes = [{h: v} for h in HEADER for v in ODD_CELLS]
    rng = random.Random(4)
    changes += [{h: rng.choice(ODD_CELLS) for h in rng.sample(HEADER, rng.randint(2, 4))}
                for _ in range(200)]
    rows = [row(**{h: v.replace(";", ",") for h, v in c.items()}) for c in changes]
    table = source_table(SPEC, [("odd.csv", csv_file(rows))], None)
    staged = stage_table(table, SPEC, tiny_communes, KINDS)
    assert staged.rows_read == len(rows) == len(staged.records) + len(staged.rejects)
    assert set(staged.records["siret"].dropna()) <= {"19070916200019"}
    # what a map shows and filters on is in digits 0-9
    assert staged.records["code_postal"].dropna().str.fullmatch("[0-9]{5}").all()
    assert staged.records["departement"].dropna().str.fullmatch("[0-9]{2,3}|2[AB]").all()


MAPPED = [f.name for f in FIELDS if f.record and f.mappable]
EVERY_FIELD = parse_spec('[sources.x]\nkind = "file"\npath = "x.csv"\n[sources.x.columns]\n'
                         + "".join(f'{n} = "{n}"\n' for n in MAPPED),
                         Path("/tmp/sources.toml")).sources["x"]
GOOD_RECORD = {"siret": "19070916200019", "nom": "Atelier Vélo", "enseigne": "Vélo",
               "types": "ACI", "types_candidats": "EI", "adresse": "3 rue Neuve",
               "complement_adresse": "bât A", "code_postal": "07200", "commune": "Aubenas",
               "code_insee": "07019", "departement": "07", "latitude": "44.62",
               "longitude": "4.39", "telephone": "04 65 71 12 34", "courriel": "a@b.fr",
               "site_web": "velo.example", "description": "Vélos", "date_maj": "2024-01-02",
               "etat_administratif": "A", "date_fermeture": "",
               "siret_signature": "42385519600014"}


def test_no_cell_in_any_mapped_field_stops_a_source(tiny_communes):
    # the same odd cells in every field a source may map (dates, kinds, the ASP's
    # signature, the état administratif…), each alone
    rows = [{**GOOD_RECORD, "source_id": f"r{i}-{j}", field: value}
            for i, field in enumerate(MAPPED) for j, value in enumerate(ODD_CELLS)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=MAPPED, delimiter=";")
    writer.writeheader()
    writer.writerows(rows)
    table = source_table(EVERY_FIELD, [("x.csv", text.getvalue().encode())], None)
    staged = stage_table(table, EVERY_FIELD, tiny_communes, KINDS)
    assert staged.rows_read == len(rows) == len(staged.records) + len(staged.rejects)
    assert staged.records["site_web"].dropna().str.startswith("https://").all()
