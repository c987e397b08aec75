"""Hostile inputs: files a partner (or an attacker) may send, and what must come of them.

Each case is a partner file in the shape of a regional network's list, run through the real
readers and staging (`source_table`, `stage_table`) and, when it says so, the publication's
writers. Its expectation is the user's: how many rows are kept, which rows are refused with
which reason (row and field named), what is published. docs/FAULTS.md is generated from these
cases (scripts/write_fault_matrix.py) and checked against them by a test.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from dataclasses import dataclass, field

HEADER = ["Nom", "SIRET", "Adresse", "CP", "Ville", "Type", "Tel", "Mail", "Site", "Lat", "Lon"]
GOOD = ["Atelier Vélo", "19070916200019", "3 rue Neuve", "07200", "Aubenas", "ACI",
        "04 65 71 12 34", "contact@velo.example", "velo.example", "44.62", "4.39"]


def row(**over) -> list[str]:
    """The good row with some cells replaced (by header name)."""
    cells = dict(zip(HEADER, GOOD, strict=True))
    cells.update(over)
    return [cells[h] for h in HEADER]


def csv_file(rows: list[list[str]], header=HEADER, sep=";", encoding="utf-8",
             newline="\n") -> bytes:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    return (newline.join(lines) + newline).encode(encoding)


def five(**over) -> list[list[str]]:
    """Five good rows (other SIRETs), the second with `over`."""
    sirets = ["19070916200019", "42385519600014", "39485379000266", "34255976200048",
              "40058084100015"]
    out = [row(Nom=f"Structure {i}", SIRET=s) for i, s in enumerate(sirets, start=1)]
    out[1] = row(**{"Nom": "Structure 2", "SIRET": sirets[1], **over})
    return out


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@dataclass(frozen=True)
class Hostile:
    id: str
    what: str  # the input, for a person
    data: bytes
    outcome: str  # what must happen, for a person
    kept: int | None = None  # rows staged (None: the file fails as a whole)
    rejected: dict = field(default_factory=dict)  # reason → count
    reject_at: tuple | None = None  # (row number, field) of the first reject
    warned: dict = field(default_factory=dict)  # reason → count (at least)
    error: str | None = None  # the file's error message, when it fails as a whole
    values: dict = field(default_factory=dict)  # (row index, field) → value kept
    csv_cells: dict = field(default_factory=dict)  # field → cell of the published CSV
    name: str = "reseau.csv"


SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(1)">'

CASES = [
    Hostile("unterminated-quote", "an unterminated quote in row 2 of a 5-row CSV",
            csv_file(five(Nom='"Structure 2')),
            "the row refused (an unterminated quote), the 3 lines it swallowed read again",
            kept=4, rejected={"ligne_illisible": 1}, reject_at=(3, None)),
    Hostile("mixed-encodings", "UTF-8 and Windows-1252 lines in one file",
            csv_file([row(Nom="Régie de quartier")]) + "Étape;42385519600014;1 rue Neuve;"
            "07200;Aubenas;ACI;;;;;\n".encode("cp1252"),
            "both rows kept, no mojibake", kept=2,
            values={(0, "nom"): "Régie de quartier", (1, "nom"): "Étape"}),
    Hostile("mojibake", "names already mis-decoded once (RÃ©gie)",
            csv_file([row(Nom="RÃ©gie de quartier", Ville="AubÃ©nas")]),
            "repaired (ftfy), with a texte_repare warning", kept=1,
            warned={"texte_repare": 2}, values={(0, "nom"): "Régie de quartier"}),
    Hostile("windows-1252", "a whole file in Windows-1252, semicolons, a title row",
            b"Liste des SIAE 2026\n\n" + csv_file([row(Nom="Entreprise d'insertion Étoile")],
                                                  encoding="cp1252"),
            "read, header found below the title", kept=1,
            values={(0, "nom"): "Entreprise d'insertion Étoile"}),
    Hostile("utf-16", "Excel's Unicode text: UTF-16 with a BOM, tabs",
            "\ufeff".encode("utf-16-le") + csv_file([row()], sep="\t").decode().encode(
                "utf-16-le"), "read as UTF-16", kept=1),
    Hostile("crlf-bom", "CRLF line ends and a UTF-8 BOM", b"\xef\xbb\xbf" + csv_file(
        [row(), row(SIRET="42385519600014")], newline="\r\n"), "read", kept=2),
    Hostile("huge-cell", "a 1 MB cell in one row", csv_file(five(Adresse="x" * 1_000_000)),
            "that row refused, named; the others kept", kept=4,
            rejected={"ligne_illisible": 1}, reject_at=(3, None)),
    Hostile("ten-megabytes", "a 10 MB name", csv_file(five(Nom="A" * 10_000_000)),
            "that row refused, the reject keeping the cell's beginning only", kept=4,
            rejected={"ligne_illisible": 1}, reject_at=(3, None)),
    Hostile("nul-byte", "one NUL byte in one cell", csv_file(five(Nom="Struc\x00ture 2")),
            "that row refused (a NUL character), the others kept", kept=4,
            rejected={"ligne_illisible": 1}, reject_at=(3, None)),
    Hostile("binary", "a binary file (many NUL bytes) under a .csv name", b"\x00\x01" * 500,
            "the file refused as binary", error="binary content"),
    Hostile("empty", "an empty file", b"", "the file refused: empty", error="empty payload"),
    Hostile("header-only", "a header and no row", csv_file([]), "no row: nothing staged",
            kept=0),
    Hostile("more-cells", "a row with more filled cells than the header",
            csv_file(five()) + b"Extra;19070916200019;1 rue;07200;Aubenas;ACI;;;;;;surplus\n",
            "that row refused (ligne_illisible)", kept=5, rejected={"ligne_illisible": 1},
            reject_at=(7, None)),
    Hostile("fewer-cells", "a row with fewer cells than the header",
            csv_file([row()[:6]]), "padded, kept", kept=1),
    Hostile("duplicate-headers", "two columns named Nom",
            csv_file([["Atelier", *row()]], header=["Nom", *HEADER]),
            "the first one is mapped, the second reported (Nom (2))", kept=1,
            values={(0, "nom"): "Atelier"}),
    Hostile("formula-hyperlink", 'a name =HYPERLINK("http://x.example","click")',
            csv_file([row(Nom='"=HYPERLINK(""http://x.example"",""click"")"')]),
            "kept exact in GeoJSON and Parquet, neutralised in the CSV", kept=1,
            csv_cells={"nom": '\'=HYPERLINK("http://x.example","click")'}),
    Hostile("formula-plus", "a name +1+1", csv_file([row(Nom="+1+1")]), "neutralised in CSV",
            kept=1, csv_cells={"nom": "'+1+1"}),
    Hostile("formula-minus", "a name -2+3", csv_file([row(Nom="-2+3")]),
            "neutralised in CSV", kept=1, csv_cells={"nom": "'-2+3"}),
    Hostile("formula-at", "a name @SUM(A1:A2)", csv_file([row(Nom="@SUM(A1:A2)")]),
            "neutralised in CSV", kept=1, csv_cells={"nom": "'@SUM(A1:A2)"}),
    Hostile("formula-tab", "a name \\t=1+1", csv_file([row(Nom="\t=1+1")]),
            "the tab folded, the formula neutralised in the CSV", kept=1,
            csv_cells={"nom": "'=1+1"}),
    Hostile("html-everywhere", "HTML and script in every text field",
            csv_file([row(Nom=SCRIPT, Adresse=IMG, Ville=SCRIPT, Site="<b>x</b>",
                          Mail=SCRIPT)]),
            "kept as text (escaped by every reader); invalid site and e-mail dropped with "
            "warnings", kept=1, warned={"site_web_invalide": 1, "courriel_invalide": 1},
            values={(0, "nom"): SCRIPT, (0, "adresse"): IMG}),
    Hostile("javascript-url", "a website javascript:alert(1)",
            csv_file([row(Site="javascript:alert(1)")]), "the website dropped, warned",
            kept=1, warned={"site_web_invalide": 1}, values={(0, "site_web"): None}),
    Hostile("data-url", "a website data:text/html,<script>",
            csv_file([row(Site="data:text/html,<script>alert(1)</script>")]),
            "the website dropped, warned", kept=1, warned={"site_web_invalide": 1}),
    Hostile("rtl-override", "a right-to-left override inside a name",
            csv_file([row(Nom="Atelier \u202eolév")]), "the invisible character removed",
            kept=1, values={(0, "nom"): "Atelier olév"}),
    Hostile("zero-width", "zero-width spaces and a BOM inside a name",
            csv_file([row(Nom="Ate\u200blier\ufeff Vélo")]), "removed", kept=1,
            values={(0, "nom"): "Atelier Vélo"}),
    Hostile("control-chars", "a bell and an escape in a name",
            csv_file([row(Nom="Atelier\x07 V\x1b[31mélo")]), "removed", kept=1,
            values={(0, "nom"): "Atelier V[31mélo"}),
    Hostile("emoji", "an emoji in a name", csv_file([row(Nom="Atelier Vélo 🚲")]),
            "kept exact", kept=1, values={(0, "nom"): "Atelier Vélo 🚲"}),
    Hostile("swapped-coordinates", "latitude and longitude swapped",
            csv_file([row(Lat="4.39", Lon="44.62")]),
            "kept; the point is refused when locating (outside France)", kept=1,
            values={(0, "latitude"): 4.39}),
    Hostile("coordinates-out-of-range", "a latitude of 200",
            csv_file([row(Lat="200", Lon="4.39")]), "both coordinates dropped, warned",
            kept=1, warned={"coordonnees_invalides": 1}, values={(0, "latitude"): None}),
    Hostile("lambert-93", "Lambert-93 metres instead of degrees (842000, 6519000)",
            csv_file([row(Lat="6519000", Lon="842000")]), "dropped, warned", kept=1,
            warned={"coordonnees_invalides": 2}, values={(0, "longitude"): None}),
    Hostile("zero-zero", "coordinates 0,0", csv_file([row(Lat="0", Lon="0")]),
            "kept; refused when locating (outside France)", kept=1),
    Hostile("siret-scientific", "a SIRET in scientific notation (8.07E+13)",
            csv_file([row(SIRET="8.07E+13")]),
            "the place kept without SIRET, the value in siret_ecarte", kept=1,
            warned={"siret_invalide": 1}, values={(0, "siret"): None,
                                                  (0, "siret_ecarte"): "8.07E+13"}),
    Hostile("siret-filler", "a SIRET of zeros", csv_file([row(SIRET="00000000000000")]),
            "the place kept without SIRET (siret_factice)", kept=1,
            warned={"siret_factice": 1}, values={(0, "siret"): None}),
    Hostile("siret-luhn", "a SIRET failing Luhn", csv_file([row(SIRET="19070916200018")]),
            "the place kept without SIRET (siret_invalide)", kept=1,
            warned={"siret_invalide": 1}),
    Hostile("blank-name", "a name of spaces only", csv_file(five(Nom="   ")),
            "that row refused, nom_manquant", kept=4, rejected={"nom_manquant": 1},
            reject_at=(3, "nom")),
    Hostile("bad-postcode", "a postcode ABCDE", csv_file([row(CP="ABCDE")]),
            "the postcode dropped, warned; the commune found by its name", kept=1,
            warned={"code_postal_invalide": 1}),
    Hostile("gzip-bomb", "a 300 kB .gz that unpacks to 256 MB (the cap lowered to 128 MB "
            "by SIAE_MAX_UNPACKED_MB for the test)", gzip.compress(b"0" * (64 << 20)) * 4,
            "refused once the cap is passed, never unpacked whole", error="larger than 128 MB",
            name="bomb.csv.gz"),
    Hostile("zip-two-members", "a .zip holding two files", zipped({"a.csv": csv_file([row()]),
                                                                   "b.csv": b"x"}),
            "refused: one file was expected", error="holding 2 files",
            name="liste.csv.zip"),
    Hostile("zip-as-gz", "a ZIP archive named .csv.gz (as the ASP ships)",
            zipped({"liste.csv": csv_file([row()])}), "read", kept=1, name="liste.csv.gz"),
]
