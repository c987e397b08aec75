"""One place, one SIRET, unless a known succession links them."""

from transforms.invariants import siret_conflicts


def rec(sid, source, source_id, siret, signature=None):
    return {"structure_id": sid, "source": source, "source_id": source_id, "siret": siret,
            "siret_signature": signature}


def test_two_sirets_on_one_place_are_a_conflict():
    records = [rec("s1", "a", "1", "34255976200048"), rec("s1", "b", "2", "39485379000266"),
               rec("s2", "a", "3", "40058084100015")]
    assert siret_conflicts(records, []) == [("s1", ["34255976200048", "39485379000266"])]


def test_the_asp_succession_or_an_analysts_same_links_them():
    asp = [rec("s1", "asp", "1", "34255976200196", signature="34255976200048"),
           rec("s1", "emplois", "2", "34255976200048")]
    assert siret_conflicts(asp, []) == []
    judged = [rec("s1", "a", "1", "34255976200048"), rec("s1", "b", "2", "39485379000266")]
    assert siret_conflicts(judged, [frozenset(("record:a:1", "record:b:2"))]) == []


def test_placeholders_are_not_identities():
    records = [rec("s1", "a", "1", "82863454399901"), rec("s1", "b", "2", "39485379000266")]
    assert siret_conflicts(records, []) == []
