"""The publication in data·inclusion's schema v1: checked with the schema's own package, never
inventing a value, and readable by a data·inclusion consumer (our own connector) unchanged."""

import datetime as dt
import json

from data_inclusion.schema.v1 import Structure

from tests.helpers import structure
from transforms import datainclusion_export as di
from transforms.apis import datainclusion_table


def published(n, **kw) -> dict:
    base = structure(n, siret=f"{n:014d}", code_postal="07000", commune="Privas",
                     code_insee="07186", adresse="1 rue de la Paix", telephone="+33475000000",
                     courriel=f"contact{n}@exemple.fr", site_web="https://exemple.fr",
                     date_maj=dt.date(2025, 3, 1), types=["ACI", "EI"])
    base.update(kw)
    return base


def test_a_structure_becomes_a_valid_v1_row_with_our_source_and_kinds_as_networks():
    (doc,), report = di.structure_rows([published(1)])
    Structure.model_validate(doc)  # the schema's own model accepts it
    assert doc["source"] == "siae-atlas" and doc["id"] == "siae-atlas--siae-0001"
    assert doc["reseaux_porteurs"] == ["aci", "ei"]
    assert (doc["siret"], doc["code_insee"], doc["telephone"]) == (
        "00000000000001", "07186", "+33475000000")
    assert report == {"structures": 1, "left_out": {}, "emptied": {}}


def test_what_we_do_not_know_stays_empty():
    (doc,), _ = di.structure_rows([published(2, courriel=None, site_web=None)])
    for field in ("horaires_accueil", "accessibilite_lieu", "courriel", "site_web",
                  "lien_source", "description"):
        assert doc[field] is None, field


def test_a_value_the_schema_refuses_is_emptied_and_counted_not_the_row():
    (doc,), report = di.structure_rows([published(3, courriel="pas une adresse")])
    assert doc["courriel"] is None and doc["nom"]
    assert list(report["emptied"]) == [next(iter(report["emptied"]))]
    assert next(iter(report["emptied"])).startswith("courriel:")


def test_a_row_whose_required_value_is_refused_is_left_out_with_the_reason():
    docs, report = di.structure_rows([published(4, nom="AB"), published(5)])
    assert [d["id"] for d in docs] == ["siae-atlas--siae-0005"]
    (reason,) = report["left_out"]
    assert reason.startswith("nom:") and report["left_out"][reason] == 1


def test_date_maj_falls_back_to_the_day_our_record_last_changed_never_to_today():
    undated = published(6, date_maj=None)
    future = published(7, date_maj=dt.date.today() + dt.timedelta(days=30))
    changed = {"siae-0006": dt.date(2026, 5, 4), "siae-0007": dt.date(2026, 6, 1)}
    docs, report = di.structure_rows([undated, future], changed_on=changed)
    assert [d["date_maj"] for d in docs] == [dt.date(2026, 5, 4)]  # 6 kept with its date
    assert next(iter(report["left_out"])).startswith("date_maj:")  # 7: a future date refused
    lone, _ = di.structure_rows([published(8, date_maj=None)])
    assert lone == []  # no date at all: left out rather than dated today


def test_lien_source_points_to_the_structure_page_of_the_site_when_it_has_an_address():
    (doc,), _ = di.structure_rows([published(9)], link_base="https://iae.example.org/")
    assert doc["lien_source"] == "https://iae.example.org/structures/siae-0009.html"


def test_json_and_csv_files_are_read_back_by_a_data_inclusion_consumer():
    rows_in = [published(10), published(11, types=["AI"])]
    docs, _ = di.structure_rows(rows_in)
    json_data, csv_data, _, _ = di.export_files(rows_in)
    rows = json.loads(json_data)
    assert [Structure.model_validate(r).id for r in rows] == [d["id"] for d in docs]
    assert list(rows[0]) == list(Structure.model_fields)
    # our own data·inclusion connector reads the CSV as it reads theirs
    table = datainclusion_table(csv_data, "csv")
    read = [dict(zip(table.columns, r, strict=True)) for r in table.rows]
    assert [(r["source_id"], r["types"]) for r in read] == [
        ("siae-atlas--siae-0010", "ACI, EI"), ("siae-atlas--siae-0011", "AI")]
    assert read[0]["siret"] == "00000000000010"


def _day_rows():
    return [published(10), published(11, courriel="pas une adresse"), published(12, nom="AB"),
            published(13, date_maj=None), published(14, nom="Structure 14\rsuite"),
            published(15, date_maj=None)]


CHANGED = {"siae-0013": dt.date(2026, 5, 4), "siae-0015": dt.date(2026, 5, 5)}


def test_the_export_in_one_pass_gives_the_bytes_and_report_of_the_rows():
    rows = _day_rows()
    docs, report = di.structure_rows(rows, "https://atlas.example", CHANGED)
    json_data, csv_data, again, clean = di.export_files(rows, "https://atlas.example", CHANGED)
    assert again == report
    assert json.loads(json_data) == json.loads(json.dumps(docs, default=str))
    assert csv_data.decode().count("\n") == len(docs) + 1
    # rows written without a refusal, with their date: the emptied and the left out are not
    assert clean == {"siae-0010": "2025-03-01", "siae-0013": "2026-05-04",
                     "siae-0014": "2025-03-01", "siae-0015": "2026-05-05"}


def test_lines_of_the_previous_export_serve_rows_whose_date_is_the_same():
    rows = _day_rows()
    json_data, csv_data, report, clean = di.export_files(rows, "", CHANGED)
    lines = di.previous_lines(json_data, csv_data)
    assert set(lines) == {"siae-0010", "siae-0011", "siae-0013", "siae-0014", "siae-0015"}
    # lines marked as the previous export's own: which rows took them shows in the output
    reuse = {sid: (doc.replace("Structure", "Previous"), line.replace("Structure", "Previous"),
                   clean[sid]) for sid, (doc, line) in lines.items() if sid in clean}
    later = {**CHANGED, "siae-0015": dt.date(2026, 6, 1)}  # 15's record changed since
    again_json, again_csv, again_report, again_clean = di.export_files(rows, "", later, reuse)
    text = again_json.decode()
    assert "Previous 10" in text and "Previous 13" in text and "Previous 14" in text
    assert "Previous 15" not in text and "2026-06-01" in text
    assert again_report == report and again_clean == {**clean, "siae-0015": "2026-06-01"}
    fresh = di.export_files(rows, "", later)
    assert again_json.replace(b"Previous", b"Structure") == fresh[0]
    assert again_csv.replace(b"Previous", b"Structure") == fresh[1]
    # a cell with a line break: CSV lines and rows no longer pair, nothing is taken
    broken = di.export_files([published(16, adresse="1 rue\nBât. B")], "", {})
    assert di.previous_lines(broken[0], broken[1]) == {}


def test_a_carriage_return_in_a_cell_quotes_its_row_in_the_csv():
    import csv
    import io

    data = di.export_files([published(17, nom="Ligne\rdeux"), published(18)])[1]
    rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
    assert [r["nom"] for r in rows] == ["Ligne\rdeux", "Structure 18"]
    assert data.decode().splitlines()[1].startswith('"siae-atlas","siae-atlas--siae-0017"')
