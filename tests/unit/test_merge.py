"""Merging: one place per SIRET or match, survivorship, stable IDs, judgements, redirects."""

import datetime as dt
import json
import pickle

import pandas as pd
import pytest

from transforms.fields import BY_NAME
from transforms.merge import (
    LINK_COLUMNS,
    SHARED_FIELDS,
    Edge,
    carry_redirects,
    cluster_records,
    identity_key,
    merge_records,
    new_structure_id,
    record_key,
)
from transforms.staging import RECORD_COLUMNS


def rec(source, source_id, siret, **fields):
    base = dict.fromkeys(RECORD_COLUMNS)
    base.update(source=source, source_id=source_id, siret=siret, types=["ACI"],
                nom=f"{source} name", row_number=1)
    base.update(fields)
    return base


def frame(*records):
    return pd.DataFrame(list(records), dtype=object)


RECORDS = frame(
    rec("reseau", "r1", "19070916200019", telephone="+33465711234",
        date_maj=dt.date(2024, 1, 1), code_insee="07019", adresse="3 rue Neuve",
        code_postal="07200"),
    rec("dreets", "d1", "19070916200019", types=["ETTI"], latitude=44.6, longitude=4.4,
        date_maj=dt.date(2023, 1, 1)),
    rec("emplois", "e1", None, nom="Sans SIRET"),
    rec("emplois", "e2", "82863454399901", nom="Antenne"),
)
PRIORITY = {"dreets": 60, "emplois": 50, "reseau": 40}


def by_siret(result, siret):
    return result.structures[result.structures["siret"] == siret].iloc[0]


def test_same_siret_is_one_place_with_union_of_kinds_and_sources():
    result = merge_records(RECORDS, PRIORITY, {})
    assert len(result.structures) == 3
    merged = by_siret(result, "19070916200019")
    assert merged["types"] == ["ACI", "ETTI"]
    assert merged["sources"] == ["dreets", "reseau"]
    links = result.links[result.links["structure_id"] == merged["structure_id"]]
    assert set(links["rule"]) == {"siret"}


def test_each_field_from_the_highest_priority_source_that_has_it():
    merged = by_siret(merge_records(RECORDS, PRIORITY, {}), "19070916200019")
    provenance = json.loads(merged["provenance"])
    assert merged["nom"] == "dreets name" and provenance["nom"] == "dreets"
    assert merged["telephone"] == "+33465711234" and provenance["telephone"] == "reseau"
    # the address block travels together, from the source that placed the commune
    assert (merged["adresse"], merged["code_insee"]) == ("3 rue Neuve", "07019")
    assert merged["date_maj"] == dt.date(2024, 1, 1)
    assert merged["coordinate_candidates"] == (4.4, 44.6, "dreets")


def test_freshest_wins_between_sources_of_equal_priority():
    result = merge_records(frame(
        rec("a", "1", "19070916200019", nom="Old", date_maj=dt.date(2020, 1, 1)),
        rec("b", "1", "19070916200019", nom="New", date_maj=dt.date(2025, 1, 1)),
    ), {"a": 50, "b": 50}, {})
    assert result.structures.iloc[0]["nom"] == "New"


def test_placeholder_and_missing_sirets_are_not_identities():
    assert identity_key("82863454399901", "emplois", "e2") == ("record:emplois:e2",
                                                               "source_record")
    assert identity_key(None, "emplois", "e1")[1] == "source_record"
    assert identity_key("19070916200019", "x", "1") == ("siret:19070916200019", "siret")


def test_same_siren_is_not_the_same_place():
    result = merge_records(frame(rec("a", "1", "19070916200019"),
                                 rec("a", "2", "19070916200027")), PRIORITY, {})
    assert len(result.structures) == 2


def test_ids_do_not_depend_on_row_or_source_order():
    a = merge_records(RECORDS, PRIORITY, {})
    b = merge_records(RECORDS.iloc[::-1].reset_index(drop=True), PRIORITY, {})
    assert a.ids == b.ids
    pd.testing.assert_frame_equal(a.structures, b.structures)


def test_known_ids_are_kept_and_new_ids_avoid_them():
    known = {"siret:19070916200019": "siae-keepme0001"}
    result = merge_records(RECORDS, PRIORITY, known)
    assert by_siret(result, "19070916200019")["structure_id"] == "siae-keepme0001"
    # every key of the place now maps to the kept ID, the record keys included
    assert result.ids[record_key("dreets", "d1")] == "siae-keepme0001"
    taken = {new_structure_id("k", set())}
    assert new_structure_id("k", taken) not in taken


def test_a_new_siret_keeps_the_id_through_the_record_key():
    first = merge_records(frame(rec("asp", "11", "19070916200019")), PRIORITY, {})
    sid = first.structures.iloc[0]["structure_id"]
    moved = merge_records(frame(rec("asp", "11", "42385519600014")), PRIORITY, first.ids)
    assert moved.structures.iloc[0]["structure_id"] == sid


def test_asp_signature_and_current_siret_are_one_place():
    result = merge_records(frame(
        rec("asp", "11", "42385519600014", siret_signature="19070916200019"),
        rec("annuaire", "19070916200019", "19070916200019"),
    ), PRIORITY, {})
    assert len(result.structures) == 1
    assert "asp_siret" in set(result.links["rule"])


MATCHED = frame(
    rec("reseau", "r9", "19070916200019", nom="Recyclerie du Forez"),
    rec("emplois", "e9", None, nom="Recyclerie Forez"),
)
EDGE = Edge(record_key("emplois", "e9"), record_key("reseau", "r9"), 0.93)


def test_a_matcher_edge_merges_records_without_siret():
    result = merge_records(MATCHED, PRIORITY, {}, [EDGE])
    assert len(result.structures) == 1
    link = result.links.set_index("source").loc["emplois"]
    assert (link["rule"], link["score"]) == ("match", 0.93)


def test_judgement_different_splits_what_the_matcher_merged():
    pair = frozenset({EDGE.left, EDGE.right})
    result = merge_records(MATCHED, PRIORITY, {}, [EDGE], {pair: "different"})
    assert len(result.structures) == 2


def test_judgement_different_even_splits_a_shared_siret():
    records = frame(rec("a", "1", "19070916200019"), rec("b", "1", "19070916200019"))
    pair = frozenset({record_key("a", "1"), record_key("b", "1")})
    assert len(merge_records(records, PRIORITY, {}, [], {pair: "different"}).structures) == 2


def test_judgement_different_holds_across_a_chain_of_matches():
    # a ~ b ~ c by the matcher, but an analyst said a and c differ: b joins one of them only,
    # whichever judgements (many, unrelated) are on file
    records = frame(rec("a", "1", None, nom="Atelier"), rec("b", "1", None, nom="Atelier"),
                    rec("c", "1", None, nom="Atelier"))
    a, b, c = (record_key(s, "1") for s in "abc")
    unrelated = {frozenset({f"record:x:{i}", f"record:y:{i}"}): "different" for i in range(50)}
    result = merge_records(records, PRIORITY, {}, [Edge(a, b, 0.95), Edge(b, c, 0.9)],
                           {**unrelated, frozenset({a, c}): "different"})
    ids = dict(zip(result.links["source"], result.links["structure_id"], strict=True))
    assert ids["a"] == ids["b"] != ids["c"]


def test_judgement_same_merges_what_the_matcher_kept_apart():
    pair = frozenset({EDGE.left, EDGE.right})
    result = merge_records(MATCHED, PRIORITY, {}, [], {pair: "same"})
    assert len(result.structures) == 1
    assert set(result.links["rule"]) == {"judgement"}


def test_merging_two_known_places_keeps_the_oldest_id_and_redirects_the_other():
    apart = merge_records(MATCHED, PRIORITY, {})
    old, new = sorted(apart.structures["structure_id"])
    first_seen = {old: dt.datetime(2024, 1, 1), new: dt.datetime(2025, 1, 1)}
    merged = merge_records(MATCHED, PRIORITY, apart.ids, [EDGE], None, first_seen)
    assert list(merged.structures["structure_id"]) == [old]
    assert merged.redirects == {new: old}
    # split again: the redirected ID comes back, no redirect remains
    again = merge_records(MATCHED, PRIORITY, merged.ids, [], None, first_seen)
    assert set(again.structures["structure_id"]) == {old, new} and again.redirects == {}


def _siblings():
    """An organisation's AI and EI at one address, and a network's row without SIRET."""
    return frame(
        rec("emplois", "ai", "34255976200048", nom="ADEF AI", types=["AI"]),
        rec("emplois", "ei", "39485379000266", nom="ADEF EI", types=["EI"]),
        rec("reseau", "x", None, nom="ADEF", types=["EI"]),
    )


def test_a_match_never_joins_two_places_with_different_sirets():
    ai, ei, x = (record_key(s, i) for s, i in (("emplois", "ai"), ("emplois", "ei"),
                                               ("reseau", "x")))
    # the matcher (wrongly) links the row to both siblings: it joins one, never both
    result = merge_records(_siblings(), PRIORITY, {}, [Edge(x, ei, 0.95), Edge(x, ai, 0.9)])
    assert len(result.structures) == 2
    assert {frozenset((x, ai)), frozenset((x, ei))} & set(result.demoted)
    for s in result.structures.to_dict("records"):
        assert s["siret"] in ("34255976200048", "39485379000266")


def test_a_row_resembling_siblings_of_other_kinds_goes_with_its_own_kind():
    ai, ei, x = (record_key(s, i) for s, i in (("emplois", "ai"), ("emplois", "ei"),
                                               ("reseau", "x")))
    result = merge_records(_siblings(), PRIORITY, {}, [Edge(x, ai, 0.95), Edge(x, ei, 0.95)])
    links = dict(zip(result.links["source_id"], result.links["structure_id"], strict=True))
    assert links["x"] == links["ei"] != links["ai"]  # its kind (EI) is the EI's only
    assert result.demoted[frozenset((x, ai))] == "types_differents"


def test_a_row_resembling_siblings_of_its_kind_waits_for_an_analyst():
    records = frame(
        rec("emplois", "a", "34255976200048", nom="ADEF", types=["AI"]),
        rec("emplois", "b", "34255976200196", nom="ADEF", types=["AI"]),
        rec("reseau", "x", None, nom="ADEF", types=["AI"]),
    )
    a, b, x = (record_key(s, i) for s, i in (("emplois", "a"), ("emplois", "b"),
                                             ("reseau", "x")))
    result = merge_records(records, PRIORITY, {}, [Edge(x, a, 0.95), Edge(x, b, 0.95)])
    assert len(result.structures) == 3
    assert result.demoted == {frozenset((x, a)): "siret_ambigu",
                              frozenset((x, b)): "siret_ambigu"}
    # ...unless the SIRET its source gave, set aside as mistyped, points to one of them
    hinted = records.copy()
    hinted.at[2, "siret_ecarte"] = "34255976200197"  # one digit off b's
    result = merge_records(hinted, PRIORITY, {}, [Edge(x, a, 0.95), Edge(x, b, 0.95)])
    links = dict(zip(result.links["source_id"], result.links["structure_id"], strict=True))
    assert links["x"] == links["b"] != links["a"]


def test_the_asp_succession_and_an_analysts_same_may_join_two_sirets():
    records = frame(
        rec("asp", "1", "34255976200196", siret_signature="34255976200048"),
        rec("emplois", "e", "34255976200048"),
        rec("emplois", "f", "39485379000266"),
        rec("reseau", "g", "40058084100015"),
    )
    same = {frozenset((record_key("emplois", "f"), record_key("reseau", "g"))): "same"}
    result = merge_records(records, PRIORITY, {}, [], same)
    assert len(result.structures) == 2
    assert sorted(result.links["rule"]) == ["asp_siret", "judgement", "judgement", "siret"]


def test_a_set_aside_siret_is_kept_in_the_provenance():
    records = frame(rec("reseau", "r", None, siret_ecarte="00000000000000"))
    provenance = json.loads(merge_records(records, PRIORITY, {}).structures.loc[0, "provenance"])
    assert provenance["siret_ecarte"] == "reseau: 00000000000000"


def test_ids_kept_without_conflict_are_the_ones_the_ordering_by_age_gives():
    # _assign_ids' short way (each place claims at most one ID, no two the same) must give
    # the IDs and redirects of the general one, the new IDs included (same order, same
    # collisions avoided)
    import random

    from transforms.merge import _assign_ids, _ids_by_age
    for seed in range(20):
        rng = random.Random(seed)
        clusters = [[f"k{seed}-{i}-{j}" for j in range(rng.randint(1, 3))]
                    for i in range(rng.randint(1, 60))]
        rng.shuffle(clusters)
        known = {}
        for n, keys in enumerate(clusters):
            if rng.random() < 0.6:  # a known place: some of its keys carry its ID
                for k in rng.sample(keys, rng.randint(1, len(keys))):
                    known[k] = f"siae-known{n:03d}"
        # an ID whose keys are gone, and a new key's would-be ID, already taken
        known["gone"] = "siae-gone"
        known["old"] = new_structure_id(clusters[0][0], set())
        first_seen = {sid: dt.datetime(2026, 1, 1 + n % 28) for n, sid in
                      enumerate(sorted(set(known.values())))}
        ids, redirects, lost = _assign_ids(clusters, known, first_seen)
        claims = [sorted({known[k] for k in keys if k in known}) for keys in clusters]

        def age(sid, first_seen=first_seen):
            return (str(first_seen.get(sid, "")), sid)

        assert (ids, redirects, lost) == _ids_by_age(clusters, claims, known, age)
        assert redirects == {} and lost == set()
        assert len(set(ids)) == len(ids)


def test_a_judged_record_gone_from_its_source_takes_no_id_from_its_old_place():
    # a1 and b1 were one place (SIRET) and a1 was judged different from c1; a1 then left its
    # source. Its key (the smallest) still names the place's ID: the place keeps that ID
    records = frame(rec("b", "1", "19070916200019"), rec("c", "1", None, nom="Autre"))
    a1, c1 = record_key("a", "1"), record_key("c", "1")
    known = {"siret:19070916200019": "siae-place", record_key("b", "1"): "siae-place",
             a1: "siae-place"}
    seen = {"siae-place": dt.datetime(2024, 1, 1)}
    result = merge_records(records, PRIORITY, known, [], {frozenset({a1, c1}): "different"},
                           first_seen=seen)
    ids = dict(zip(result.links["source"], result.links["structure_id"], strict=True))
    assert ids["b"] == "siae-place"
    assert result.redirects == {}
    # and a judged key never seen with a record gets no ID of its own
    unseen = merge_records(records, PRIORITY, {},
                           [], {frozenset({record_key("x", "9"), c1}): "different"})
    assert record_key("x", "9") not in unseen.ids


def test_only_the_keys_of_this_runs_places_are_current():
    # core.structure_ids' last_seen is stamped on these keys: a record gone from its source
    # keeps the last_seen of the last run that had it
    first = merge_records(RECORDS, PRIORITY, {})
    later = merge_records(RECORDS[RECORDS["source_id"] != "e1"], PRIORITY, first.ids)
    gone = record_key("emplois", "e1")
    assert gone in first.current and gone in later.ids
    assert gone not in later.current
    assert set(later.current) == set(first.current) - {gone}
    assert later.current == {k: first.ids[k] for k in later.current}


@pytest.mark.parametrize(
    ("previous", "found", "live", "expected"),
    [
        ({"y": "x"}, {}, {"x"}, {"y": "x"}),  # the duplicate's records are gone: still leads
        ({"y": "x"}, {"x": "z"}, {"z"}, {"x": "z", "y": "z"}),  # then x merged into z
        ({"y": "x"}, {}, {"x", "y"}, {}),  # split again: y is in use
        ({"y": "x"}, {}, {"w"}, {}),  # x's place removed altogether
        ({"y": "x", "x": "y"}, {}, {"w"}, {}),  # a loop leads nowhere
        ({}, {"y": "x"}, {"x"}, {"y": "x"}),  # this run's own
    ],
    ids=["records-gone", "chain", "split", "place-removed", "loop", "found-now"],
)
def test_redirects_outlive_the_records_of_the_merged_place(previous, found, live, expected):
    assert carry_redirects(previous, found, live) == expected


def test_a_redirect_found_once_is_carried_when_the_duplicate_leaves_its_source():
    apart = merge_records(MATCHED, PRIORITY, {})
    old, new = sorted(apart.structures["structure_id"])
    first_seen = {old: dt.datetime(2024, 1, 1), new: dt.datetime(2025, 1, 1)}
    merged = merge_records(MATCHED, PRIORITY, apart.ids, [EDGE], None, first_seen)
    assert merged.redirects == {new: old}
    # the record that carried `new` leaves: the clustering no longer finds the redirect
    keep = MATCHED.iloc[[i for i in range(len(MATCHED))
                         if apart.ids[record_key(MATCHED.iloc[i]["source"],
                                                 MATCHED.iloc[i]["source_id"])] == old]]
    later = merge_records(keep, PRIORITY, merged.ids, [], None, first_seen)
    assert later.redirects == {}
    live = set(later.structures["structure_id"])
    assert carry_redirects(merged.redirects, later.redirects, live) == {new: old}


def test_a_place_split_off_keeps_its_new_id_when_a_record_joins_it_later():
    # b and c share a SIRET: one place. An analyst splits them; b keeps the ID, c gets a new
    # one, and c's keys move to it. A record that later joins c's place, whose key sorts
    # before b's, must not hand the old ID to c's place
    records = frame(rec("b", "1", "19070916200019"), rec("c", "1", "19070916200019"))
    split = {frozenset({record_key("b", "1"), record_key("c", "1")}): "different"}
    first = merge_records(records, PRIORITY, {})
    (old,) = set(first.structures["structure_id"])
    apart = merge_records(records, PRIORITY, first.ids, [], split)
    by_source = dict(zip(apart.links["source"], apart.links["structure_id"], strict=True))
    new = ({by_source["b"], by_source["c"]} - {old}).pop()
    assert old in by_source.values() and apart.redirects == {}
    moved_side = "b" if by_source["b"] == new else "c"
    assert apart.moved and set(apart.moved.values()) == {new}
    assert record_key(moved_side, "1") in apart.moved
    assert apart.ids[record_key(moved_side, "1")] == new
    joined = frame(*records.to_dict("records"), rec("a", "9", None, nom="Nouveau"))
    edge = Edge(record_key("a", "9"), record_key(moved_side, "1"), 0.95)
    later = merge_records(joined, PRIORITY, apart.ids, [edge], split)
    after = dict(zip(later.links["source"], later.links["structure_id"], strict=True))
    assert {after["b"], after["c"]} == {old, new}
    assert after[moved_side] == new == after["a"] and later.moved == {}


def test_a_record_moving_to_another_place_does_not_take_its_old_places_id_along():
    # p1 and p2 were place P (SIRET S1), q1 place Q (S2). p2's SIRET is corrected to S2: it
    # joins Q. P (p1 and its SIRET) keeps its ID, Q keeps its own; nothing is redirected
    s1, s2 = "19070916200019", "42385519600014"
    before = frame(rec("x", "p1", s1), rec("y", "p2", s1), rec("a", "q1", s2))
    first = merge_records(before, PRIORITY, {})
    was = dict(zip(first.links["source_id"], first.links["structure_id"], strict=True))
    seen = {sid: dt.datetime(2024, 1, 1) for sid in set(was.values())}  # same age: a tie
    after = frame(rec("x", "p1", s1), rec("y", "p2", s2), rec("a", "q1", s2))
    later = merge_records(after, PRIORITY, first.ids, first_seen=seen)
    now = dict(zip(later.links["source_id"], later.links["structure_id"], strict=True))
    assert now == {"p1": was["p1"], "p2": was["q1"], "q1": was["q1"]}
    assert later.redirects == {} and later.moved == {}


def test_a_place_with_an_id_of_its_own_leaves_a_contested_one_to_the_other():
    # p1 (without SIRET) and p2 were place P; q1 place Q (SIRET S2). p2 now carries S2: it
    # joins Q. One key of each place names P's ID: P, which has no other, keeps it
    s2 = "42385519600014"
    p2 = rec("y", "p2", None, nom="Atelier")
    before = frame(rec("x", "p1", None, nom="Atelier"), p2, rec("a", "q1", s2))
    edge = Edge(record_key("x", "p1"), record_key("y", "p2"), 0.95)
    first = merge_records(before, PRIORITY, {}, [edge])
    was = dict(zip(first.links["source_id"], first.links["structure_id"], strict=True))
    assert was["p1"] == was["p2"] != was["q1"]
    seen = {sid: dt.datetime(2024, 1, 1) for sid in set(was.values())}
    after = frame(rec("x", "p1", None, nom="Atelier"), {**p2, "siret": s2},
                  rec("a", "q1", s2))
    later = merge_records(after, PRIORITY, first.ids, first_seen=seen)
    now = dict(zip(later.links["source_id"], later.links["structure_id"], strict=True))
    assert now == {"p1": was["p1"], "p2": was["q1"], "q1": was["q1"]}
    assert later.redirects == {} and later.moved == {}


def test_only_fields_whose_equal_values_are_the_same_value_are_shared():
    # The shared values are found by equality: 1, 1.0 and True are one key, so a number or
    # a boolean field would take another place's value of another type.
    assert {BY_NAME[f].type for f in SHARED_FIELDS} <= {"string", "list", "date", "json"}


def test_places_share_one_copy_of_the_values_they_have_in_common():
    # Each row holds its own strings; a national memo held half a gigabyte of such copies.
    rows = [rec("emplois", f"e{i}", f"8286345430{i:04d}", commune="".join(["Au", "benas"]),
                code_insee="07019", types=["ACI", "EI"]) for i in range(3)]
    result = merge_records(frame(*rows), PRIORITY, {})
    places = result.structures.to_dict("records")
    assert len(places) == 3
    first, *others = places
    for field in ("commune", "code_insee", "types", "sources", "provenance"):
        assert all(p[field] == first[field] for p in others)
        assert all(p[field] is first[field] for p in others), field
    # what is not shared stays each place's own
    assert len({p["siret"] for p in places}) == 3
    assert list(result.links["source"]) == ["emplois"] * 3


def test_links_name_each_record_by_source_and_source_id_even_with_colons():
    # source_id is read back from the record key: an ID holding colons stays whole
    rows = [rec("emplois", "ab:12:x", "19070916200019"), rec("dreets", "d:1", "19070916200019"),
            rec("reseau", "r1", None)]
    result = merge_records(frame(*rows), PRIORITY, {})
    links = result.link_table.to_pylist()
    assert [(link["source"], link["source_id"], link["rule"]) for link in links[:2]] == [
        ("dreets", "d:1", "siret"), ("emplois", "ab:12:x", "siret")]  # survivorship order
    assert {link["source_id"] for link in links} == {"ab:12:x", "d:1", "r1"}
    place = dict(zip(result.structures["siret"], result.structures["structure_id"],
                     strict=True))
    assert [link["structure_id"] for link in links[:2]] == [place["19070916200019"]] * 2
    assert result.link_table.schema.names == LINK_COLUMNS


def test_a_matched_links_score_is_kept_and_the_others_have_none():
    rows = [rec("emplois", "e1", "19070916200019"), rec("reseau", "r1", None)]
    edge = Edge(record_key("emplois", "e1"), record_key("reseau", "r1"), 0.93)
    result = merge_records(frame(*rows), PRIORITY, {}, edges=[edge])
    scores = {link["source_id"]: (link["rule"], link["score"])
              for link in result.link_table.to_pylist()}
    assert scores == {"e1": ("siret", None), "r1": ("match", 0.93)}


def test_a_places_links_name_its_records_by_its_own_key_objects_even_once_pickled():
    # the clustering's places travel from forked processes and sit in the memo as pickles:
    # a link holding its own copy of the record's key (or source_id) was 126 MB more at 1M
    rows = [rec("emplois", f"e{i}", "19070916200019") for i in range(3)]
    clusters, _ = cluster_records(rows, PRIORITY, [], {})
    (place,) = pickle.loads(pickle.dumps(clusters, protocol=pickle.HIGHEST_PROTOCOL))
    keys = {id(k) for k in place.keys}
    assert [k for k, _, _ in place.link_rows()] == [record_key("emplois", f"e{i}")
                                                      for i in range(3)]
    assert all(id(k) in keys for k, _, _ in place.link_rows())


def test_a_places_source_points_are_flat_and_a_place_without_one_has_none():
    rows = [rec("dreets", "d1", "19070916200019", latitude=44.6, longitude=4.4),
            rec("reseau", "r1", "19070916200019", latitude="44.7", longitude="4.5"),
            rec("emplois", "e1", "82863454399901")]
    result = merge_records(frame(*rows), PRIORITY, {})
    assert by_siret(result, "19070916200019")["coordinate_candidates"] == (
        4.4, 44.6, "dreets", 4.5, 44.7, "reseau")
    assert by_siret(result, "82863454399901")["coordinate_candidates"] == ()
