"""SIRET and SIREN: digits only, 14 and 9 long, Luhn-checked (python-stdnum knows La Poste)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from transforms.errors import InvalidValue

_SCIENTIFIC = re.compile(r"^\d+(?:[.,]\d+)?[eE]\+?\d+$")
_PLACEHOLDER = re.compile(r"^\d{9}999\d{2}$")
_FLOAT_TAIL = re.compile(r"\.0$")
_SEPARATORS = re.compile(r"[\s.\u00a0-]")
_DOUBLED = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]  # a Luhn digit doubled, digits summed
# Values typed where a SIRET was required but unknown: they may pass the Luhn check
# (00000000000000 does) and would make unrelated structures one place.
_FILLER_SIRENS = {"123456789", "012345678", "987654321"}


def normalize_siret(value: str) -> str | None:
    """A valid 14-digit SIRET, None when empty, InvalidValue otherwise.

    Handles what spreadsheets do to SIRETs: spaces and dots, a lost leading zero (13 digits
    that are valid once padded) and `.0` from float cells. Scientific notation has lost digits
    for good and is refused with that reason.
    """
    raw = (value or "").strip()
    if not raw:
        return None
    if _SCIENTIFIC.match(raw.replace(" ", "")):
        raise InvalidValue("siret_invalide", f"{raw!r} is in scientific notation, digits lost")
    cleaned = _SEPARATORS.sub("", _FLOAT_TAIL.sub("", raw))
    if not (cleaned.isascii() and cleaned.isdigit()):  # (isdigit alone takes "²" and "٣")
        raise InvalidValue("siret_invalide", f"{raw!r} is not made of digits")
    if len(cleaned) == 13:
        cleaned = "0" + cleaned
    if len(cleaned) != 14:
        raise InvalidValue("siret_invalide", f"{raw!r} has {len(cleaned)} digits, not 14")
    if is_filler_siret(cleaned):
        raise InvalidValue("siret_factice", f"{raw!r} is a filler, not a real SIRET")
    if not (_surely_valid(cleaned) or stdnum_siret.is_valid(cleaned)):
        if is_placeholder_siret(cleaned) and stdnum_siren.is_valid(cleaned[:9]):
            return cleaned  # an antenne's ASP placeholder: kept, never used as identity
        raise InvalidValue("siret_invalide", f"{raw!r} fails the Luhn check")
    return cleaned


# Luhn's sum two digits at a time (the first doubled, the second not), from the right: a
# digit at a time took a fifth of a row's staging.
_PAIR_SUMS = {f"{a}{b}": _DOUBLED[a] + b for a in range(10) for b in range(10)}
_PAIR = re.compile("..")


def _luhn(digits: str) -> bool:
    """The Luhn check of ASCII digits."""
    if len(digits) % 2:
        digits = "0" + digits  # a leading zero changes no sum
    return sum(map(_PAIR_SUMS.__getitem__, _PAIR.findall(digits))) % 10 == 0


def _surely_valid(siret: str) -> bool:
    """A quick yes for the common case, python-stdnum deciding the others: both Luhn checks
    pass and it is not La Poste's (whose SIRETs follow a rule of their own). Never says yes
    where stdnum says no; it only saves stdnum's generic path (a quarter of staging)."""
    return not siret.startswith("356000000") and _luhn(siret) and _luhn(siret[:9])


# _DOUBLED as an array: the doubled digit's sum, by digit
_DOUBLED_ARRAY = np.array(_DOUBLED, dtype=np.int64)
_FILLER_SIREN_BYTES = np.array(sorted(_FILLER_SIRENS), dtype="S9")


def plain_sirets(values: Iterable[str]) -> list[str]:
    """The values that are plainly valid SIRETs, as `normalize_siret` gives them (itself):
    exactly 14 ASCII digits, both Luhn checks passed, no filler and not La Poste's. Decided
    for all at once in numpy (a national source's 280,000 SIRETs took 1.5 s one by one);
    `normalize_siret` decides the others, whatever they are."""
    plain = [v for v in values if type(v) is str and len(v) == 14 and v.isascii()
             and v.isdigit() and not v.startswith("356000000")]
    if not plain:
        return []
    raw = np.array(plain, dtype="S14")
    digits = (np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(-1, 14)
              - ord("0")).astype(np.int64)
    # Luhn from the right: the second, fourth… digits doubled (of 14: those at even places;
    # of the SIREN's 9: those at odd places)
    siret_sum = (_DOUBLED_ARRAY[digits[:, 0::2]].sum(axis=1) + digits[:, 1::2].sum(axis=1))
    siren_sum = (_DOUBLED_ARRAY[digits[:, 1:9:2]].sum(axis=1) + digits[:, 0:9:2].sum(axis=1))
    same = digits == digits[:, :1]
    filler = (same.all(axis=1) | same[:, :9].all(axis=1)
              | np.isin(raw.astype("S9"), _FILLER_SIREN_BYTES))
    ok = (siret_sum % 10 == 0) & (siren_sum % 10 == 0) & ~filler
    return [v for v, good in zip(plain, ok.tolist(), strict=True) if good]


def is_filler_siret(siret: str) -> bool:
    """A well-known filler: one digit repeated, a SIREN of one repeated digit (000000000…)
    or a counting sequence."""
    siren = siret[:9]
    return len(set(siret)) == 1 or len(set(siren)) == 1 or siren in _FILLER_SIRENS


def siren_of(siret: str | None) -> str | None:
    """The SIREN (first 9 digits) of a valid SIRET."""
    return siret[:9] if siret else None


def is_placeholder_siret(siret: str | None) -> bool:
    """ASP placeholders for antennes without a SIRET of their own end in 999 + two digits."""
    return bool(siret and _PLACEHOLDER.match(siret))
