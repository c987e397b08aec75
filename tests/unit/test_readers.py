"""Readers survive real partner files: separators, encodings, title rows, numbers in XLSX."""

import datetime as dt
import gzip
import io
import json
import random
import re

import pandas as pd
import pytest
from openpyxl import Workbook

from transforms.readers import ReadError, first_lines, guess_format, read_table

HEADERS = ["N° SIRET", "Raison sociale", "CP"]


def test_semicolon_windows_1252_with_a_title_row():
    text = (
        "Liste des SIAE — réseau;;\n\nN° SIRET;Raison sociale;CP\n"
        "190 709 162 00019;Régie Élan;7200\n"
    )
    table = read_table(text.encode("cp1252"), "csv", HEADERS)
    assert table.encoding == "cp1252" and table.delimiter == ";"
    assert table.columns == HEADERS
    assert table.rows == [["190 709 162 00019", "Régie Élan", "7200"]]
    assert table.header_row == 3 and table.row_numbers == [4]


@pytest.mark.parametrize("delimiter", [",", "|", "\t"], ids=["comma", "pipe", "tab"])
def test_other_separators_with_utf8_bom(delimiter):
    text = delimiter.join(HEADERS) + "\n" + delimiter.join(["1", "Atelier, Vélo", "69003"])
    if delimiter == ",":
        text = text.replace("Atelier, Vélo", '"Atelier, Vélo"')
    table = read_table(("\ufeff" + text).encode("utf-8"), "csv", HEADERS)
    assert table.delimiter == delimiter and table.encoding == "utf-8"
    assert table.rows[0][1] == "Atelier, Vélo"


def test_row_with_extra_filled_cells_is_reported_not_dropped_silently():
    text = "N° SIRET;Raison sociale;CP\n1;A;69003\n2;B;69003;surplus\n3;C;69003;;\n"
    table = read_table(text.encode(), "csv", HEADERS)
    assert [r[1] for r in table.rows] == ["A", "C"]
    assert table.bad_rows[0][0] == 3 and "4 cells for 3 columns" in table.bad_rows[0][1]


def test_missing_header_names_what_was_expected():
    with pytest.raises(ReadError, match="none of the mapped columns"):
        read_table(b"a;b;c\n1;2;3\n", "csv", HEADERS)


def test_garbage_is_a_read_error_not_a_crash():
    with pytest.raises(ReadError):
        read_table(bytes(range(256)) * 4, "csv", HEADERS)
    with pytest.raises(ReadError, match="XLSX"):
        read_table(b"this is not a workbook", "xlsx", HEADERS)
    with pytest.raises(ReadError, match="JSON"):
        read_table(b"<html>502 Bad Gateway</html>", "json", ["nom"])


def test_xlsx_header_below_title_numbers_and_dates_become_text():
    wb = Workbook()
    ws = wb.active
    ws.append(["DREETS — structures conventionnées"])
    ws.append([])
    ws.append(["N° SIRET", "Raison sociale", "CP", "Mise à jour"])
    ws.append([19070916200019, "EPLEFPA", 7200, dt.datetime(2024, 3, 1)])
    ws.append([None, None, None, None])
    buf = io.BytesIO()
    wb.save(buf)
    table = read_table(buf.getvalue(), "xlsx", HEADERS)
    assert table.header_row == 3
    assert table.rows == [["19070916200019", "EPLEFPA", "7200", "2024-03-01"]]
    assert table.row_numbers == [4]


def test_json_results_page_nested_fields_and_lists():
    doc = {
        "count": 1,
        "results": [{"nom": "A", "adresse": {"cp": "69003"}, "types": ["ACI", "EI"]}],
    }
    table = read_table(json.dumps(doc).encode(), "json", ["nom"])
    assert dict(zip(table.columns, table.rows[0], strict=True)) == {
        "nom": "A",
        "adresse.cp": "69003",
        "types": "ACI, EI",
    }


def test_json_records_path_must_exist():
    with pytest.raises(ReadError, match="key 'items' not found"):
        read_table(b'{"results": []}', "json", ["nom"], records_path="items.data")


def test_parquet_values_become_text():
    df = pd.DataFrame({"nom": ["A", None], "lat": [45.5, None], "types": [["ACI"], ["EI"]]})
    buf = io.BytesIO()
    df.to_parquet(buf)
    table = read_table(buf.getvalue(), "parquet", ["nom"])
    assert table.rows == [["A", "45.5", "ACI"], ["", "", "EI"]]


def test_gzip_is_unpacked_and_truncated_gzip_is_an_error():
    payload = gzip.compress("N° SIRET;Raison sociale;CP\n1;A;69003\n".encode())
    assert read_table(payload, "csv", HEADERS).rows == [["1", "A", "69003"]]
    with pytest.raises(ReadError, match="gzip"):
        read_table(payload[:-8], "csv", HEADERS)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("liste.CSV", "csv"),
        ("export.csv.gz", "csv"),
        ("geiq.xlsx", "xlsx"),
        ("https://h/x.parquet?v=2", "parquet"),
        ("a.json", "json"),
        ("README", None),
    ],
)
def test_guess_format(name, fmt):
    assert guess_format(name) == fmt


@pytest.mark.parametrize("seed", range(3))
def test_the_header_scan_reads_the_first_lines_as_a_whole_split_gives_them(seed):
    rng = random.Random(seed)
    pieces = ["a;b", "", "\r\n", "\r", "\n", "\u2028", "x\u2029y", '"q\nq"']
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        for count in (0, 1, 3, 30):
            assert first_lines(text, count) == re.split(r"\r\n|\r|\n", text)[:count]
