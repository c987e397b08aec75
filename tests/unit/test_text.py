"""Cell text as staging keeps it: invisible characters removed, spaces folded."""

import random
import unicodedata

import pytest

from transforms.text import clean_text, looks_mojibake, repair


def _plain_clean(value):
    # the rule written out plainly, one character at a time: what `clean_text` must give
    if not value:
        return None
    value = "".join(c for c in value if not (unicodedata.category(c) in ("Cc", "Cf")
                                             and not c.isspace()))
    return " ".join(value.split()) or None


@pytest.mark.parametrize(("raw", "clean"), [
    ("Atelier \u202eolév", "Atelier olév"),  # a bidirectional override reverses the reading
    ("Ate\u200blier\ufeff Vélo", "Atelier Vélo"),  # zero-width space, stray BOM
    ("Régie\x07 de\tquartier\n", "Régie de quartier"),  # a bell; tab and line break fold
    ("Vélo\x7f", "Vélo"),  # DEL, a control character too
    ("Velo\x7f", "Velo"),  # ...in plain ASCII as well
    ("\u200b\u200d", None),  # nothing visible left
    ("", None),
    (None, None),
], ids=["bidi", "zero-width", "controls-and-spaces", "del", "del-in-ascii", "only-invisible",
        "empty", "none"])
def test_named_cases(raw, clean):
    assert clean_text(raw) == clean


def test_any_text_is_cleaned_as_the_plain_rule_says():
    rng = random.Random(11)
    alphabet = ("aé Œ\t\n\r\x00\x07\x1b\x7f\x85\xa0\xad\u200b\u200c\u200d\u2028\u202e"
                "\u2066\ufeff\U000e0041中")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
             for _ in range(20_000)]
    assert [clean_text(t) for t in texts] == [_plain_clean(t) for t in texts]


@pytest.mark.parametrize(
    ("texts", "suspect"),
    [
        (["Régie", "Atelier Vélo", "Lyon 3e"], False),
        (["Régie", "RÃ©gie"], True),
        ([], False),
        # "Ã" ending one cell and "©" starting the next are not mojibake
        (["VILLA Ã", "© 2024"], False),
    ],
    ids=["clean", "one-mojibake", "none", "across-cells"],
)
def test_a_column_is_searched_for_mojibake_at_once(texts, suspect):
    assert looks_mojibake(texts) is suspect
    # the same answer as asking each cell
    assert suspect == any(repair(t) != t for t in texts)
