"""Kinds: labels, codes, lists and measures map to the canonical codes."""

import pytest

from transforms.kinds import parse_kinds


@pytest.mark.parametrize(
    ("raw", "codes", "unknown"),
    [
        ("ACI", ["ACI"], []),
        ("ACI, ETTI", ["ACI", "ETTI"], []),
        ("ACI, EI", ["ACI", "EI"], []),
        ("etti/aci", ["ACI", "ETTI"], []),
        ("ACI et EI", ["ACI", "EI"], []),
        ("Atelier chantier d'insertion", ["ACI"], []),
        ("Entreprise de travail temporaire d'insertion", ["ETTI"], []),
        ("Association intermédiaire", ["AI"], []),
        ("EITI_DC", ["EITI"], []),
        ("Entreprise adaptée", ["EA"], []),
        ("Régie de quartier", [], ["REGIE DE QUARTIER"]),
        ("EI; Régie", ["EI"], ["REGIE"]),
        ("", [], []),
    ],
)
def test_parse_kinds(raw, codes, unknown):
    assert parse_kinds(raw) == (codes, unknown)


def test_source_lookup_wins():
    assert parse_kinds("Chantier", {"Chantier": "ACI"}) == (["ACI"], [])
    assert parse_kinds("Chantier, Intérim", {"Chantier": "ACI", "intérim": "ETTI"}) == (
        ["ACI", "ETTI"],
        [],
    )
