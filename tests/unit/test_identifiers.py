"""SIRET normalisation: what spreadsheets do to SIRETs, and what cannot be repaired."""

import random

import pytest
from stdnum import luhn

from transforms.errors import InvalidValue
from transforms.identifiers import _luhn, is_placeholder_siret, normalize_siret, siren_of


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("19070916200019", "19070916200019"),
        ("190 709 162 00019", "19070916200019"),
        ("190.709.162.00019", "19070916200019"),
        ("19070916200019.0", "19070916200019"),  # a float cell
        ("", None),
        ("35600000000048", "35600000000048"),  # La Poste: the Luhn exception
        ("82863454399901", "82863454399901"),  # ASP placeholder of an antenne
    ],
    ids=["plain", "spaces", "dots", "float-cell", "empty", "la-poste", "placeholder"],
)
def test_usable_sirets(raw, expected):
    assert normalize_siret(raw) == expected


def test_lost_leading_zero_is_restored_when_luhn_then_passes():
    # 05420020900010 is a valid SIRET; a number cell keeps 13 digits of it.
    assert normalize_siret("5420020900010") == "05420020900010"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("8.07E+13", "scientific notation"),
        ("42123456700012", "Luhn"),
        ("190709162000", "12 digits"),
        ("SIRET en cours", "not made of digits"),
    ],
    ids=["scientific", "luhn", "too-short", "text"],
)
def test_unusable_sirets_say_why(raw, detail):
    with pytest.raises(InvalidValue) as err:
        normalize_siret(raw)
    assert err.value.reason == "siret_invalide"
    assert detail in err.value.detail


def test_siren_and_placeholder():
    assert siren_of("19070916200019") == "190709162"
    assert siren_of(None) is None
    assert is_placeholder_siret("82863454399901")
    assert not is_placeholder_siret("19070916200019")


@pytest.mark.parametrize(
    "raw",
    ["00000000000000", "11111111111111", "000 000 000 00018", "99999999999999",
     "12345678900015", "00000000012345"],
    ids=["zeros", "ones", "zero-siren", "nines", "counting-siren", "zero-siren-2"],
)
def test_filler_sirets_are_not_identities(raw):
    with pytest.raises(InvalidValue) as err:
        normalize_siret(raw)
    assert err.value.reason == "siret_factice"


def test_the_quick_check_never_accepts_what_stdnum_refuses():
    import random

    from stdnum.fr import siret as stdnum_siret

    from transforms.identifiers import _surely_valid

    rng = random.Random(5)
    numbers = ["".join(str(rng.randint(0, 9)) for _ in range(14)) for _ in range(20000)]
    numbers += [f"356000000{rng.randint(0, 99999):05d}" for _ in range(2000)]  # La Poste
    numbers += ["35600000000048", "19070916200019", "42385519600014"]
    accepted = [n for n in numbers if _surely_valid(n)]
    assert len(accepted) > 100  # about 1 in 100 random numbers passes both checks
    assert all(stdnum_siret.is_valid(n) for n in accepted)
    # and it says yes to the valid ones outside La Poste
    assert all(_surely_valid(n) for n in numbers
               if stdnum_siret.is_valid(n) and not n.startswith("356000000"))


def test_the_quick_luhn_check_agrees_with_python_stdnum():
    rng = random.Random(9)
    numbers = ["".join(rng.choice("0123456789") for _ in range(n))
               for n in (9, 14) for _ in range(5000)]
    assert [_luhn(n) for n in numbers] == [luhn.is_valid(n) for n in numbers]


@pytest.mark.parametrize("raw", ["١٩٠٧٠٩١٦٢٠٠٠١٩", "1907091620001²"],
                         ids=["arabic-indic digits", "a superscript"])
def test_digits_other_than_0_to_9_are_no_siret(raw):
    with pytest.raises(InvalidValue, match="not made of digits"):
        normalize_siret(raw)


@pytest.mark.parametrize(
    ("raw", "plain"),
    [("19070916200019", True), ("42385519600014", True),
     ("19070916200018", False),  # the SIRET's Luhn check fails
     ("35600000000048", False),  # La Poste: stdnum decides
     ("12345678900015", False), ("00000000000000", False), ("00000000012345", False),
     ("82863454399901", False),  # an ASP placeholder: normalize_siret decides
     ("190 709 162 00019", False), (" 19070916200019", False), ("1907091620001", False),
     ("١٩٠٧٠٩١٦٢٠٠٠١٩", False), ("", False), (None, False)],
    ids=["valid", "valid-2", "luhn-fails", "la-poste", "counting-filler", "zeros",
         "zero-siren", "placeholder", "spaces", "leading-space", "13-digits",
         "arabic-indic", "empty", "none"])
def test_plain_sirets_are_the_valid_ones_written_as_they_should_be(raw, plain):
    from transforms.identifiers import plain_sirets

    assert plain_sirets([raw]) == ([raw] if plain else [])


def test_a_plain_siret_is_what_normalize_siret_gives_back_unchanged():
    """The column-at-once check (staging) never decides a value otherwise than
    normalize_siret: what it takes, normalize_siret gives back as it is, and it takes every
    valid 14-digit SIRET outside La Poste's."""
    from transforms.identifiers import plain_sirets

    rng = random.Random(11)
    values = ["".join(rng.choice("0123456789") for _ in range(14)) for _ in range(20000)]
    # valid SIRETs: a Luhn-valid SIREN, then the last digit that makes the SIRET valid
    sirens = [s for s in ("".join(rng.choice("0123456789") for _ in range(9))
                          for _ in range(20000)) if luhn.is_valid(s)]
    values += [next(v for d in "0123456789" if luhn.is_valid(v := f"{s}0000{d}"))
               for s in sirens]
    values += ["19070916200019", "35600000000048", "11111111111111", "82863454399901"]
    taken = set(plain_sirets(values))
    assert len(taken) > 1000
    for v in values:
        try:
            normalized = normalize_siret(v)
        except InvalidValue:
            normalized = None
        if v in taken:
            assert normalized == v
        elif normalized == v and not v.startswith("356000000"):
            assert is_placeholder_siret(v) and not luhn.is_valid(v), v
