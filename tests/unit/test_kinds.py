"""Kinds: labels, codes, lists and measures map to the canonical codes."""

import random
import re
import unicodedata

import pytest

from transforms.kinds import fold, parse_kinds


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


def _plain_fold(text):
    # the rule written out plainly, one character at a time: what `fold` must give
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^0-9A-Za-z]+", " ", text).upper().strip()


def test_names_and_labels_fold_as_the_plain_rule_says():
    # the matcher's blocks and the communes' names are made of this fold
    rng = random.Random(3)
    alphabet = ("aeÉéèêëàâäîïôöûüùçÇœŒæÆßøñ'’-_. ,;stSTEKİıǅﬁ²\u0301\u0327\u2028\t0189ΣσДд中")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
             for _ in range(20_000)]
    assert [fold(t) for t in texts] == [_plain_fold(t) for t in texts]
    assert fold("Régie de l'Île-d'Yeu") == "REGIE DE L ILE D YEU"
