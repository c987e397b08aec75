"""Kinds of structure (ACI, AI, EI, ETTI, EITI, and the related GEIQ, EA, EATT)."""

from __future__ import annotations

import re
import unicodedata

from transforms.text import combining_marks

SIAE_KINDS = ("ACI", "AI", "EI", "ETTI", "EITI")
OTHER_KINDS = ("GEIQ", "EA", "EATT")
KNOWN_KINDS = SIAE_KINDS + OTHER_KINDS

# Labels seen in partner files and public sources, folded (no accents, upper case).
_LABELS = {
    "ATELIER CHANTIER D INSERTION": "ACI",
    "ATELIER ET CHANTIER D INSERTION": "ACI",
    "ATELIERS ET CHANTIERS D INSERTION": "ACI",
    "CHANTIER D INSERTION": "ACI",
    "ASSOCIATION INTERMEDIAIRE": "AI",
    "ENTREPRISE D INSERTION": "EI",
    "ENTREPRISE DE TRAVAIL TEMPORAIRE D INSERTION": "ETTI",
    "ENTREPRISE D INSERTION PAR LE TRAVAIL INDEPENDANT": "EITI",
    "GROUPEMENT D EMPLOYEURS POUR L INSERTION ET LA QUALIFICATION": "GEIQ",
    "ENTREPRISE ADAPTEE": "EA",
    "ENTREPRISE ADAPTEE DE TRAVAIL TEMPORAIRE": "EATT",
}
# ASP measure codes (ACI_DC, EI_MP…) reduce to their kind.
_MEASURE = re.compile(r"^(ACI|AI|EI|ETTI|EITI)_(?:DC|MP)$")
_SPLIT = re.compile(r"[,;/|+\n]")


def _code(part: str, lookup_folded: dict[str, str]) -> str | None:
    code = lookup_folded.get(part) or _LABELS.get(part)
    if code is None:
        m = _MEASURE.match(part.replace(" ", "_"))
        code = m.group(1) if m else (part if part in KNOWN_KINDS else None)
    return code if code in KNOWN_KINDS else None


_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")


def fold(text: str) -> str:
    """Upper case, no accents, punctuation to single spaces: for comparing labels and names."""
    if not text.isascii():  # ASCII has no accents to take off
        text = unicodedata.normalize("NFKD", text).translate(combining_marks())
    return _NOT_ALNUM.sub(" ", text).upper().strip()


def parse_kinds(value: str, lookup: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Split a kinds cell ("ACI, ETTI", "Atelier chantier d'insertion"…) into known codes.

    Returns (codes in canonical order, parts that were not recognised). A source's `lookup`
    (label → code) is consulted first, on the whole cell then on each part.
    """
    lookup_folded = {fold(k): v for k, v in (lookup or {}).items()}
    whole = fold(value)
    if not whole:
        return [], []
    code = _code(whole, lookup_folded)
    if code:
        return [code], []
    codes, unknown = set(), []
    for raw_part in _SPLIT.split(value):
        part = fold(raw_part)
        if not part:
            continue
        code = _code(part, lookup_folded)
        if code is None and " ET " in f" {part} ":
            # "ACI et ETTI": only when every piece is itself a kind.
            pieces = [_code(p.strip(), lookup_folded) for p in f" {part} ".split(" ET ")]
            if all(pieces):
                codes.update(pieces)
                continue
        if code is None:
            unknown.append(part)
        else:
            codes.add(code)
    return [k for k in KNOWN_KINDS if k in codes], unknown
