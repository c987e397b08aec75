"""Address preparation, the BAN CSV contract read by name, and acceptance."""

import csv
import io

import pytest

from transforms.geocoding import (
    REQUEST_COLUMNS,
    Result,
    accept,
    clean_address,
    fold_citycode,
    make_query,
    parse_response,
    request_csv,
)
from transforms.location import choose_location


@pytest.mark.parametrize(
    ("adresse", "complement", "expected"),
    [
        ("12 av. Jean Jaurès", None, "12 avenue Jean Jaurès"),
        ("3 bd Gambetta BP 52", None, "3 boulevard Gambetta"),
        ("Rte de Lyon CS 30001", "", "route de Lyon"),
        ("5 pl du Marché - CEDEX 07", None, "5 place du Marché"),
        ("18 r. Montesquieu", "18 R. MONTESQUIEU", "18 rue Montesquieu"),
        ("", "ZA Les Plaines", "zone artisanale Les Plaines"),
        ("BP 759", None, None),
        (None, None, None),
    ],
    ids=["avenue", "bp", "cs-route", "cedex", "complement-repeats", "complement-only",
         "only-bp", "nothing"],
)
def test_clean_address(adresse, complement, expected):
    assert clean_address(adresse, complement) == expected


@pytest.mark.parametrize(
    ("code", "folded"),
    [("75111", "75056"), ("69383", "69123"), ("13201", "13055"), ("69266", "69266"),
     ("13004", "13004"), ("75056", "75056"), (None, None)],
)
def test_fold_citycode(code, folded):
    assert fold_citycode(code) == folded


def test_query_needs_a_street_and_a_commune_filter():
    base = {"adresse": "3 rue Neuve", "code_postal": "07200", "commune": "Aubenas",
            "code_insee": "07019"}
    q = make_query(base)
    assert (q.adresse, q.code_insee) == ("3 rue Neuve", "07019")
    assert make_query({**base, "adresse": None, "complement_adresse": None}) is None
    assert make_query({**base, "code_insee": None, "code_postal": None}) is None
    # the key is the same for spelling variants of one address
    assert make_query({**base, "adresse": "3 RUE NEUVE", "commune": "AUBENAS"}).key == q.key
    assert request_csv([q]).decode().splitlines() == [
        "key,adresse,code_postal,commune,code_insee", f"{q.key},3 rue Neuve,07200,Aubenas,07019"]


def test_response_read_by_name_with_bom_reordered_and_without_status():
    text = ("\ufeffresult_type,result_score,longitude,latitude,key,extra\n"
            "street,0.81,4.39,44.62,k1,x\n"
            ",,,,k2,y\n")
    out = parse_response(text.encode("utf-8"))
    assert out["k1"] == Result("k1", "ok", 44.62, 4.39, 0.81, "street", None, None)
    assert out["k2"].status == "not-found"


def test_response_rows_blank_short_or_long_are_read_as_csv_dictreader_reads_them():
    # a blank line is skipped; a short row's missing cells are empty; a long row's extra
    # cells are ignored, and never read as a column the answer lacks (result_status here)
    text = ("key,latitude,longitude,result_score,result_type\n"
            "\n"
            "k1,44.6,4.4\n"
            "k2,44.7,4.5,0.9,street,surplus\n")
    out = parse_response(text.encode("utf-8"))
    assert list(out) == ["k1", "k2"]
    assert out["k1"] == Result("k1", "ok", 44.6, 4.4, None, None, None, None)
    assert out["k2"] == Result("k2", "ok", 44.7, 4.5, 0.9, "street", None, None)


def test_a_query_is_sent_as_its_row_with_quoting():
    q = make_query({"adresse": '2 rue "Haute", bât. B', "code_postal": "07200",
                    "commune": "Aubenas", "code_insee": "07019"})
    assert '"' in q.adresse and "," in q.adresse
    rows = list(csv.reader(io.StringIO(request_csv([q]).decode())))
    assert rows == [list(REQUEST_COLUMNS), [q.key, q.adresse, "07200", "Aubenas", "07019"]]


def test_response_without_result_columns_is_an_error():
    with pytest.raises(ValueError, match="lacks latitude"):
        parse_response(b"key,adresse\nk1,x\n")


@pytest.mark.parametrize(
    ("result", "ok", "why"),
    [
        (Result("k", "ok", 44.6, 4.4, 0.91, "housenumber"), True, "ok"),
        (Result("k", "ok", 44.6, 4.4, 0.91, "locality"), True, "ok"),
        (Result("k", "ok", 44.6, 4.4, 0.60, "housenumber"), False, "score"),
        (Result("k", "ok", 44.6, 4.4, 0.95, "municipality"), False, "type"),
        (Result("k", "not-found"), False, "status"),
        (None, False, "no answer"),
    ],
    ids=["housenumber", "locality", "low-score", "municipality", "not-found", "none"],
)
def test_accept(result, ok, why):
    accepted, reason = accept(result, 0.75)
    assert accepted is ok and reason.startswith(why)


def test_an_accepted_answer_wins_over_source_points():
    loc = choose_location([(4.41, 44.61, "src")], None, (4.0, 44.0), 2.0,
                          (4.4, 44.6, "housenumber", 0.93))
    assert (loc.geo_precision, loc.geo_source, loc.geo_score) == ("housenumber", "ban", 0.93)


def _structures():
    return [
        {"adresse": "12 av. Jean Jaurès", "code_postal": "07200", "commune": "Aubenas",
         "code_insee": "07019"},
        {"adresse": "3 bd Gambetta", "complement_adresse": "BP 52", "code_postal": "69003",
         "commune": "Lyon 3e", "code_insee": "69383"},
        {"adresse": "", "complement_adresse": "ZA Les Plaines", "code_postal": "42120",
         "commune": "Perreux", "code_insee": None},
        {"adresse": "BP 759", "code_postal": "07200", "commune": "Aubenas"},  # no query
        {"adresse": "12 av. Jean Jaurès", "code_postal": "07200", "commune": "Aubenas",
         "code_insee": "07019", "nom": "the same address, another structure"},
    ]


def test_the_query_memo_gives_what_make_query_gives_and_keeps_this_runs_addresses():
    from transforms.geocoding import QueryMemo

    first = QueryMemo()
    assert [first.query(s) for s in _structures()] == [make_query(s) for s in _structures()]
    assert len(first.kept) == 4  # one per address, the one without a query included
    # the next run: read from the memo, the same queries; an address gone is not kept
    second = QueryMemo(dict(first.kept))
    assert [second.query(s) for s in _structures()[1:]] == [
        make_query(s) for s in _structures()[1:]]
    assert set(second.kept) == set(first.kept)  # the first address is still used
    third = QueryMemo(dict(first.kept))
    third.query(_structures()[2])
    assert len(third.kept) == 1


def test_the_query_memo_is_read_not_recomputed_for_a_seen_address():
    from transforms.geocoding import ADDRESS_FIELDS, QueryMemo

    s = _structures()[0]
    address = tuple(s.get(f) for f in ADDRESS_FIELDS)
    memo = QueryMemo({address: ("k-from-memo", "12 avenue Jean Jaurès", "07200", "Aubenas",
                                "07019")})
    assert memo.query(s).key == "k-from-memo"
    assert memo.query({**s, "adresse": "13 av. Jean Jaurès"}).key == make_query(
        {**s, "adresse": "13 av. Jean Jaurès"}).key
