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


def test_invalid_website():
    with pytest.raises(InvalidValue, match="site_web_invalide"):
        normalize_website("en construction")
