"""Contacts: phones to E.164 (overseas by département), e-mails, websites."""

import pytest

from transforms.contacts import normalize_email, normalize_phone, normalize_website
from transforms.errors import InvalidValue


@pytest.mark.parametrize(
    ("raw", "dep", "expected"),
    [
        ("04 65 71 12 34", "69", "+33465711234"),
        ("+33 (0)5 16 69 72 84", None, "+33516697284"),
        ("04.65.71.12.34", None, "+33465711234"),
        ("0590 12 34 56", "971", "+590590123456"),
        ("0262 12 34 56", "974", "+262262123456"),
        ("0262 12 34 56", None, "+262262123456"),  # found among overseas regions
        ("", "69", None),
    ],
    ids=["metro", "plus33-with-0", "dots", "guadeloupe", "reunion", "reunion-no-dep", "empty"],
)
def test_phone_e164(raw, dep, expected):
    assert normalize_phone(raw, dep) == expected


def test_invalid_phone():
    with pytest.raises(InvalidValue, match="telephone_invalide"):
        normalize_phone("12 34", "69")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Contact@Atelier.FR", "Contact@atelier.fr"), ("mailto:a@b.fr", "a@b.fr"), (" ", None)],
)
def test_email(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["accueil(at)example", "a@b", "two words@x.fr"])
def test_invalid_email(raw):
    with pytest.raises(InvalidValue, match="courriel_invalide"):
        normalize_email(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("www.Atelier.fr", "https://www.atelier.fr"),
        ("http://atelier.fr/", "http://atelier.fr"),
        ("HTTPS://Atelier.fr/contact?x=1", "https://atelier.fr/contact?x=1"),
        ("", None),
    ],
)
def test_website(raw, expected):
    assert normalize_website(raw) == expected


@pytest.mark.parametrize("raw", ["en construction", "[]", "http://[::1", "atelier.fr:abc",
                                 "atelier.fr:99999"],
                         ids=["words", "brackets", "open-bracket", "port-words", "port-too-big"])
def test_invalid_website(raw):
    # urllib raises ValueError on some of these: the row must keep its place, without a URL
    with pytest.raises(InvalidValue, match="site_web_invalide"):
        normalize_website(raw)


def _numbers():
    """French national numbers over every leading pair (valid ranges and not), written the
    ways sources write them, for mainland, Corsican and overseas départements."""
    import random

    rng = random.Random(3)
    out = []
    for lead in range(10, 100):
        for sep in (" ", ".", "-", ""):
            digits = f"0{lead}" + "".join(str(rng.randint(0, 9)) for _ in range(7))
            text = sep.join(digits[i:i + 2] for i in range(0, 10, 2))
            out += [(text, dep) for dep in (None, "69", "2A", "974")]
    return out


def test_the_fast_path_gives_what_parsing_gives():
    from transforms.contacts import _parsed_phone

    for raw, dep in _numbers():
        try:
            expected = _parsed_phone(raw, raw, dep)
        except InvalidValue:
            expected = "invalid"
        try:
            got = normalize_phone(raw, dep)
        except InvalidValue:
            got = "invalid"
        assert got == expected, (raw, dep)


def test_the_french_validator_agrees_with_phonenumbers():
    """Every leading three digits, random endings, and lengths around the national one."""
    import random

    import phonenumbers

    from transforms.contacts import _VALID_FRENCH

    rng = random.Random(5)
    numbers = [f"{lead}{rng.randrange(10**6):06d}" for lead in range(100, 1000)
               for _ in range(20)]
    numbers += [n[:-1] for n in numbers[::50]] + [n + "7" for n in numbers[::50]]
    for national in numbers:
        expected = phonenumbers.is_valid_number(phonenumbers.PhoneNumber(
            country_code=33, national_number=int(national)))
        assert _VALID_FRENCH(national) == expected, national
