"""Durations of sources.toml (expect.max_age)."""

import datetime as dt

import pytest

from transforms.spec import parse_duration


@pytest.mark.parametrize(
    ("text", "delta"),
    [("8d", dt.timedelta(days=8)), ("12h", dt.timedelta(hours=12)),
     ("30m", dt.timedelta(minutes=30)), ("1.5d", dt.timedelta(hours=36))],
)
def test_parse_duration(text, delta):
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["8", "eight days", "3w", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
