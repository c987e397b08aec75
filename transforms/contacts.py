"""Contact fields: telephone to E.164, e-mail, website."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import phonenumbers

from transforms.errors import InvalidValue

# Overseas départements have their own numbering region in libphonenumber.
_PHONE_REGIONS = {"971": "GP", "972": "MQ", "973": "GF", "974": "RE", "976": "YT",
                  "975": "PM", "977": "BL", "978": "MF"}
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_HOST = re.compile(r"^(?=.{4,253}$)([a-z0-9-]+\.)+[a-z]{2,}$")


_NATIONAL = re.compile(r"0([1-9](?:[ .\-]?\d\d){4})")


def _france_validator():
    """is_valid_number for +33 numbers as one match per number, built from phonenumbers'
    own metadata: valid when the general pattern and one type's pattern (each for its
    lengths) match, as `_number_type_helper` decides. The library's loop over the types
    cost 14 µs a number, a third of a row's staging."""
    from phonenumbers import PhoneMetadata

    meta = PhoneMetadata.metadata_for_region("FR")
    general = meta.general_desc
    types = [d for name in ("premium_rate", "toll_free", "shared_cost", "voip",
                            "personal_number", "pager", "uan", "voicemail", "fixed_line",
                            "mobile")
             if (d := getattr(meta, name)) is not None and d.national_number_pattern]
    by_length = {}
    for length in general.possible_length:
        patterns = [d.national_number_pattern for d in types
                    if not d.possible_length or length in d.possible_length]
        by_length[length] = re.compile(
            rf"(?=(?:{general.national_number_pattern})$)"
            + "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")" if patterns else r"(?!)")
    return lambda national: (m := by_length.get(len(national))) is not None and \
        m.fullmatch(national) is not None


_VALID_FRENCH = _france_validator()


def normalize_phone(value: str, departement: str | None = None) -> str | None:
    """E.164 form of a French number (overseas ones by their département), None when empty."""
    raw = (value or "").strip()
    if not raw:
        return None
    # "04 65 71 12 34" outside the overseas départements: the number phonenumbers would parse
    # with region FR (tried first there), checked without parsing the text (a third of
    # staging's time went into parsing).
    if not (departement or "").startswith("97") and (m := _NATIONAL.fullmatch(raw)):
        national = re.sub(r"\D", "", m.group(1))
        if _VALID_FRENCH(national):
            return "+33" + national
    return _parsed_phone(value, raw, departement)


def _parsed_phone(value: str, raw: str, departement: str | None) -> str:
    # "+33 (0)5 …" is common and wrong: the (0) is not dialled after +33.
    raw = raw.replace("(0)", "")
    regions = [_PHONE_REGIONS.get(departement or ""), "FR", *_PHONE_REGIONS.values()]
    for region in dict.fromkeys(r for r in regions if r):
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidValue("telephone_invalide", f"{value!r} is not a valid French phone number")


def normalize_email(value: str) -> str | None:
    """A lower-cased address (without `mailto:`), None when empty."""
    raw = (value or "").strip()
    if not raw:
        return None
    raw = re.sub(r"^mailto:", "", raw, flags=re.I).strip().strip("<>")
    if not _EMAIL.match(raw):
        raise InvalidValue("courriel_invalide", f"{value!r} is not an e-mail address")
    local, domain = raw.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def normalize_website(value: str) -> str | None:
    """An absolute http(s) URL with a lower-case host (https:// added when missing)."""
    raw = (value or "").strip()
    if not raw:
        return None
    if not re.match(r"^https?://", raw, flags=re.I):
        raw = "https://" + raw.lstrip("/")
    try:
        parts = urlsplit(raw)
        port = parts.port  # (read here: a port that is no number raises as well)
    except ValueError as exc:  # "[]", "x.fr:abc": no URL, but the row keeps its place
        raise InvalidValue("site_web_invalide", f"{value!r} is not a web address") from exc
    host = (parts.hostname or "").lower()
    if not _HOST.match(host):
        raise InvalidValue("site_web_invalide", f"{value!r} has no valid host name")
    netloc = host + (f":{port}" if port else "")
    path = "" if parts.path == "/" else parts.path
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))
