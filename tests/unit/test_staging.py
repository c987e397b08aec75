"""Staging one source: canonical records, rejects with reasons, warnings, unmapped columns."""

from pathlib import Path

import pandas as pd
import pytest

from transforms.readers import Table
from transforms.spec import parse_spec
from transforms.staging import RowMemo, StageError, drop_refused, parse_date, stage_table
from warehouse.memos import Layered, load_layered, memo_path, prune_staging_memos, save_layered

SPEC = parse_spec(
    """
[sources.reseau]
kind = "file"
path = "x.csv"
ignore_columns = ["Ignorée"]
[sources.reseau.columns]
siret = "SIRET"
nom = "Nom"
types = "Type"
adresse = "Adresse"
complement_adresse = "Adresse 2"
code_postal = "CP"
commune = "Ville"
telephone = "Tel"
courriel = "Mail"
latitude = "Lat"
longitude = "Lon"
date_maj = "MAJ"
[sources.reseau.lookups.types]
"Chantier" = "ACI"
""",
    Path("/tmp/sources.toml"),
).sources["reseau"]
COLUMNS = [
    "SIRET",
    "Nom",
    "Type",
    "Adresse",
    "Adresse 2",
    "CP",
    "Ville",
    "Tel",
    "Mail",
    "Lat",
    "Lon",
    "MAJ",
    "Ignorée",
    "Nouvelle",
]
KINDS = ("ACI", "AI", "EI", "ETTI", "EITI")


def row(**over):
    base = {
        "SIRET": "190 709 162 00019",
        "Nom": " Atelier   Vélo ",
        "Type": "Chantier",
        "Adresse": "3 rue Neuve",
        "Adresse 2": "",
        "CP": "7200",
        "Ville": "AUBENAS",
        "Tel": "04 65 71 12 34",
        "Mail": "a@b.fr",
        "Lat": "44,62",
        "Lon": "4.39",
        "MAJ": "18/12/2020",
        "Ignorée": "x",
        "Nouvelle": "y",
    }
    base.update(over)
    return [base[c] for c in COLUMNS]


def stage(rows, communes):
    table = Table(COLUMNS, rows, list(range(2, 2 + len(rows))))
    return stage_table(table, SPEC, communes, KINDS)


def test_a_good_row_becomes_a_canonical_record(tiny_communes):
    out = stage([row()], tiny_communes)
    rec = out.records.iloc[0].to_dict()
    assert rec["siret"] == "19070916200019" and rec["siren"] == "190709162"
    assert rec["nom"] == "Atelier Vélo"
    assert rec["types"] == ["ACI"]
    assert (rec["code_postal"], rec["code_insee"], rec["commune"]) == ("07200", "07019", "Aubenas")
    assert (rec["departement"], rec["region"]) == ("07", "84")
    assert (rec["latitude"], rec["longitude"]) == (44.62, 4.39)
    assert rec["telephone"] == "+33465711234"
    assert str(rec["date_maj"]) == "2020-12-18"
    assert rec["row_number"] == 2
    assert out.unmapped_columns == ["Nouvelle"]
    assert out.rejects.empty and out.warnings.empty


@pytest.mark.parametrize(
    ("override", "reason", "field"),
    [
        ({"Nom": "  "}, "nom_manquant", "nom"),
        ({"Type": "Régie de quartier"}, "type_inconnu", "types"),
        ({"Type": ""}, "type_manquant", "types"),
        ({"Type": "GEIQ"}, "type_hors_perimetre", "types"),
    ],
    ids=["no-name", "unknown-kind", "no-kind", "kind-not-published"],
)
def test_unusable_rows_are_rejected_with_reason_row_and_raw(tiny_communes, override, reason, field):
    out = stage([row(), row(**override)], tiny_communes)
    assert len(out.records) == 1
    rej = out.rejects.iloc[0].to_dict()
    assert (rej["reason"], rej["field"], rej["row_number"], rej["source"]) == (
        reason,
        field,
        3,
        "reseau",
    )
    assert '"Nom"' in rej["raw"]  # the whole raw row is kept


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("42123456700012", "siret_invalide"), ("8.07E+13", "siret_invalide"),
     ("00000000000000", "siret_factice")],
    ids=["luhn", "scientific", "filler"],
)
def test_a_row_with_an_unusable_siret_is_kept_as_a_place_without_siret(tiny_communes, raw,
                                                                       reason):
    out = stage([row(SIRET=raw)], tiny_communes)
    rec = out.records.iloc[0].to_dict()
    assert rec["siret"] is None and rec["siren"] is None and rec["siret_ecarte"] == raw
    warning = out.warnings.iloc[0].to_dict()
    assert (warning["reason"], warning["field"], warning["value"]) == (reason, "siret", raw)
    assert out.rejects.empty


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"Tel": "12"}, "telephone_invalide"),
        ({"Mail": "a(at)b"}, "courriel_invalide"),
        ({"CP": "ABC"}, "code_postal_invalide"),
        ({"Lat": "nord"}, "coordonnees_invalides"),
        ({"MAJ": "31/02/2020"}, "date_invalide"),
        ({"CP": "99999", "Ville": "Atlantis"}, "commune_inconnue"),
    ],
)
def test_bad_secondary_fields_are_dropped_with_a_warning_and_the_row_kept(
    tiny_communes, override, reason
):
    out = stage([row(**override)], tiny_communes)
    assert len(out.records) == 1 and out.rejects.empty
    assert out.warnings.iloc[0]["reason"] == reason


def test_a_bad_value_repeated_on_several_rows_warns_on_each(tiny_communes):
    # normalisers run once per distinct value: the warning must still come for every row
    rows = [row(SIRET="", Nom=f"Atelier {n}", CP="ABC", MAJ="31/02/2020") for n in range(3)]
    out = stage(rows, tiny_communes)
    assert len(out.records) == 3
    by_reason = out.warnings.groupby("reason")["row_number"].apply(list).to_dict()
    assert by_reason["code_postal_invalide"] == by_reason["date_invalide"] == [2, 3, 4]
    assert out.records["code_postal"].isna().all()
    assert (out.records["commune"] == "Aubenas").all()  # the same name, resolved each time


def test_duplicate_rows_are_rejected_as_doublon(tiny_communes):
    out = stage([row(), row()], tiny_communes)
    assert len(out.records) == 1
    assert out.rejects.iloc[0]["reason"] == "doublon"
    assert "row 2" in out.rejects.iloc[0]["detail"]


def test_second_address_line_repeating_the_first_is_dropped(tiny_communes):
    out = stage([row(**{"Adresse 2": "3 RUE NEUVE"})], tiny_communes)
    assert out.records.iloc[0]["complement_adresse"] is None


def test_departement_comes_from_the_commune_not_the_source(tiny_communes):
    out = stage([row(CP="69003", Ville="Lyon")], tiny_communes)
    rec = out.records.iloc[0]
    assert (rec["departement"], rec["code_insee"], rec["code_arrondissement"]) == (
        "69",
        "69123",
        "69383",
    )


def test_a_mapped_column_that_disappeared_fails_the_source(tiny_communes):
    table = Table([c for c in COLUMNS if c != "Type"], [], [])
    with pytest.raises(StageError, match="source 'reseau'.*'Type'"):
        stage_table(table, SPEC, tiny_communes, KINDS)


def test_a_mapped_field_that_holds_objects_says_so(tiny_communes):
    # a JSON source whose "Type" became {"code": …, "label": …}: its members are columns
    table = Table([c for c in COLUMNS if c != "Type"] + ["Type.code", "Type.label"], [], [])
    with pytest.raises(StageError, match="'Type' holds objects, read as 'Type.code', "
                                         "'Type.label': map one of them"):
        stage_table(table, SPEC, tiny_communes, KINDS)


def test_unreadable_lines_from_the_reader_become_rejects(tiny_communes):
    table = Table(COLUMNS, [row()], [2], bad_rows=[(3, "15 cells for 14 columns", "a;b")])
    out = stage_table(table, SPEC, tiny_communes, KINDS)
    assert out.rejects.iloc[0]["reason"] == "ligne_illisible"
    assert out.rows_read == 2


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2020-12-18T10:37:59.126Z", "2020-12-18"),
        ("18/12/2020 10:37:59", "2020-12-18"),
        ("44197", "2021-01-01"),
        ("2024-03-01", "2024-03-01"),
    ],
    ids=["iso-z", "french", "excel-serial", "date"],
)
def test_parse_date(raw, iso):
    assert parse_date(raw).isoformat() == iso


DEP_SPEC = parse_spec(
    """
[sources.reseau]
kind = "file"
path = "x.csv"
[sources.reseau.columns]
nom = "Nom"
types = "Type"
code_postal = "CP"
commune = "Ville"
departement = "Dépt"
""",
    Path("/tmp/sources.toml"),
).sources["reseau"]


@pytest.mark.parametrize(
    ("cp", "ville", "dept", "departement", "warning"),
    [
        ("69003", "Lyon", "Rhône (69)", "69", None),
        ("69003", "Lyon", "38", "69", "departement_incoherent"),
        ("", "Nulle-Part", "7", "07", "commune_inconnue"),  # the source's, when nothing else
        ("07200", "Aubenas", "Ardèche", "07", "departement_invalide"),
    ],
    ids=["agrees", "disagrees-commune-wins", "only-the-source-knows", "not-a-code"],
)
def test_a_mapped_departement_is_checked_against_the_commune(tiny_communes, cp, ville, dept,
                                                             departement, warning):
    table = Table(["Nom", "Type", "CP", "Ville", "Dépt"],
                  [["Atelier", "ACI", cp, ville, dept]], [2])
    out = stage_table(table, DEP_SPEC, tiny_communes, KINDS)
    rec = out.records.iloc[0]
    assert rec["departement"] == departement
    assert list(out.warnings["reason"]) == ([warning] if warning else [])


def test_every_issue_of_a_row_keeps_the_row_as_read(tiny_communes):
    # mojibake repaired in two fields (two warnings), then no kind (a reject)
    out = stage([row(Nom="RÃ©gie Vélo", Adresse="3 rue de l'Ã‰glise", Type="")],
                tiny_communes)
    issues = pd.concat([out.warnings, out.rejects])
    assert len(out.warnings) >= 2 and len(out.rejects) == 1
    assert issues["raw"].nunique() == 1
    raw = __import__("json").loads(issues["raw"].iloc[0])
    assert raw["Nom"] == "RÃ©gie Vélo"  # as read, not repaired


# --- a row's issues come in the order of its checks, whichever column is read first -------


def _issues(out):
    """(row, "w" or "r", reason) of every warning and reject."""
    return [(r.row_number, kind, r.reason) for kind, frame in (("w", out.warnings),
                                                                 ("r", out.rejects))
            for r in frame.itertuples()]


def test_a_kept_rows_warnings_follow_its_checks_in_order(tiny_communes):
    # the columns hold these fields in another order than the checks read them
    out = stage([row(Tel="123", CP="ABC", SIRET="12345", Nom="RÃ©gie Vélo", MAJ="x")],
                tiny_communes)
    assert list(out.warnings["reason"]) == ["texte_repare", "siret_invalide",
                                            "code_postal_invalide", "telephone_invalide",
                                            "date_invalide"]
    assert len(out.records) == 1


@pytest.mark.parametrize(
    ("override", "issues"),
    [
        # no name: the kind, phone and postcode are never looked at
        ({"Nom": "", "Type": "GEIQ", "Tel": "123", "CP": "ABC"}, [("r", "nom_manquant")]),
        # a repaired text was read before the reject
        ({"Adresse": "Ã  cÃ´tÃ©", "Type": "GEIQ", "Tel": "123"},
         [("w", "texte_repare"), ("r", "type_hors_perimetre")]),
        # a huge cell stops the row before its name is checked
        ({"Nom": "", "Adresse": "x" * 20_001}, [("r", "valeur_trop_longue")]),
    ],
    ids=["no-name", "repaired-then-kind", "huge-cell"],
)
def test_a_rejected_row_has_the_issues_met_before_its_reject(tiny_communes, override, issues):
    out = stage([row(**override)], tiny_communes)
    assert out.records.empty
    assert sorted((k, r) for _, k, r in _issues(out)) == sorted(issues)


def test_a_repeated_id_keeps_the_warnings_read_before_it_and_no_later_ones(tiny_communes):
    spec = parse_spec("""
[sources.ids]
kind = "file"
path = "x.csv"
[sources.ids.columns]
source_id = "Id"
nom = "Nom"
types = "Type"
siret = "SIRET"
telephone = "Tel"
""", Path("/tmp/sources.toml")).sources["ids"]
    rows = [["7", "Envol", "ACI", "", ""], ["7", "Envol bis", "ACI", "190 709 162 00018", "123"]]
    out = stage_table(Table(["Id", "Nom", "Type", "SIRET", "Tel"], rows, [2, 3]), spec,
                      tiny_communes, KINDS)
    # the invalid SIRET is said, then the repeat; the phone of a refused row is not checked
    second = [(k, r) for n, k, r in _issues(out) if n == 3]
    assert sorted(second) == [("r", "doublon"), ("w", "siret_invalide")]


def test_each_distinct_value_is_normalised_once(tiny_communes):
    from transforms.staging_columns import Normalisers

    calls = []
    norm = Normalisers(SPEC, tiny_communes, KINDS)

    def upper(value):
        calls.append(value)
        return value.upper()

    assert norm.each(upper, ["a", "b", "a", "a"]) == ["A", "B", "A", "A"]
    assert norm.each(upper, ["b", "c"]) == ["B", "C"]  # answers kept for the next rows
    assert sorted(calls) == ["a", "b", "c"]


# --- the rows a staging read before are replayed (RowMemo) ----------------------------------


def _frames(staged):
    return [staged.records, staged.rejects, staged.warnings]


def _staged_with(rows, communes, memo):
    table = Table(COLUMNS, rows, list(range(2, 2 + len(rows))))
    return stage_table(table, SPEC, communes, KINDS, memo)


def _next(memo):
    return RowMemo(memo.fingerprint, memo.kept)


EDITED_ROWS = [
    row(Nom="Recyclerie du Coiron"),  # new
    row(Tel="04 75 00 00 00", SIRET="", Nom="Envol"),  # edited: no SIRET, so a new row hash
    row(Type="Inconnu", Nom="Sans type"),  # rejected before, rejected again
    row(CP="99999", Nom="Code faux"),  # a warning, kept again
    row(),  # the first one, moved down
]


def test_a_staging_replayed_from_the_last_one_equals_a_staging_afresh(tiny_communes):
    first = [row(), row(Tel="04 75 11 11 11", SIRET="", Nom="Envol"),
             row(Type="Inconnu", Nom="Sans type"), row(CP="99999", Nom="Code faux")]
    memo = RowMemo("f")
    _staged_with(first, tiny_communes, memo)
    replayed = _staged_with(EDITED_ROWS, tiny_communes, _next(memo))
    afresh = stage(EDITED_ROWS, tiny_communes)
    for got, expected in zip(_frames(replayed), _frames(afresh), strict=True):
        pd.testing.assert_frame_equal(got, expected)
    assert replayed.reused == 3 and afresh.reused == 0
    # the replayed rows carry their new row numbers
    assert sorted(replayed.records["row_number"]) == [2, 3, 5, 6]


def test_a_replayed_row_whose_id_an_earlier_row_now_takes_is_a_doublon(tiny_communes):
    memo = RowMemo("f")
    _staged_with([row(SIRET="", Nom="Envol")], tiny_communes, memo)
    rows = [row(SIRET="", Nom="Envol"), row(SIRET="", Nom="Envol")]  # same content twice
    replayed = _staged_with(rows, tiny_communes, _next(memo))
    assert list(replayed.rejects["reason"]) == ["doublon"]
    for got, expected in zip(_frames(replayed), _frames(stage(rows, tiny_communes)),
                             strict=True):
        pd.testing.assert_frame_equal(got, expected)


def test_a_memo_is_kept_for_its_fingerprint_only(tmp_path):
    path = memo_path(tmp_path, "reseau")
    memo = RowMemo("mapping-1")
    memo.keep(RowMemo.key(["a", "b"]), ([], [], None, None))
    save_layered(path, memo.fingerprint, memo.kept, Layered())
    assert load_layered(path, "mapping-1").entries == memo.kept
    assert load_layered(path, "mapping-2").entries == {}  # another mapping, code or reference
    path.write_bytes(b"not a pickle")
    assert load_layered(path, "mapping-1").entries == {}  # a damaged cache stages afresh


def test_the_memos_of_sources_no_longer_listed_are_deleted(tmp_path):
    base = {RowMemo.key([str(i)]): ([], [], None, None) for i in range(8)}
    for name in ("reseau", "ancien"):
        path = memo_path(tmp_path, name)
        save_layered(path, "mapping-1", base, Layered())
        # a row edited since: the base file stays, the new row goes to the delta file
        save_layered(path, "mapping-1", {**base, b"edited": ([], [], None, None)},
                     load_layered(path, "mapping-1"))
    files = sorted(p.name for p in memo_path(tmp_path, "x").parent.iterdir())
    assert files == ["ancien.delta.pickle", "ancien.pickle", "reseau.delta.pickle",
                     "reseau.pickle"]
    assert prune_staging_memos(tmp_path, {"reseau", "emplois"}) == ["ancien"]
    assert sorted(p.name for p in memo_path(tmp_path, "x").parent.iterdir()) == [
        "reseau.delta.pickle", "reseau.pickle"]
    assert not memo_path(tmp_path, "ancien").exists()


@pytest.mark.parametrize(
    ("kept", "last_kept", "share", "refused"),
    [
        pytest.param(86_644, 277_713, 0.5, True, id="a file rewritten while read: 69% lost"),
        pytest.param(140_000, 277_713, 0.5, False, id="half kept: within the share"),
        pytest.param(138_856, 277_713, 0.5, True, id="just over half lost"),
        pytest.param(300_000, 277_713, 0.5, False, id="a source that grows"),
        pytest.param(3, 5_000, 1.0, False, id="share 1: the check is off"),
        pytest.param(9, 10, 0.0, True, id="share 0: any loss is refused"),
        pytest.param(5, None, 0.5, False, id="no last good staging"),
        pytest.param(0, 0, 0.5, False, id="the last staging kept nothing"),
    ],
)
def test_a_staging_that_lost_most_rows_is_refused(kept, last_kept, share, refused):
    why = drop_refused("asp", kept, last_kept, share)
    assert (why is not None) == refused
    if refused:  # the message names the source, both counts and the setting to change
        assert why.startswith(f"source 'asp': {kept:,} usable rows")
        assert f"the last good staging's {last_kept:,}" in why
        assert "expect.max_drop_share" in why and "last good data kept" in why
