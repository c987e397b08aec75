"""Text as partners' files really hold it: mixed encodings, mojibake, stray NUL bytes.

A file saved by several tools can mix UTF-8 lines and Windows-1252 lines; a file already
mis-decoded once holds mojibake ("RÃ©gie" for "Régie"). Neither may reach a map: lines are
decoded one by one when the whole file is not UTF-8, and text that looks like mojibake is
repaired with ftfy (only then: it costs some tens of microseconds a cell).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

# A UTF-8 lead byte read as Windows-1252 or Latin-1 (Â, Ã, â, Å, Ð…) followed by what a
# continuation byte becomes: the mark of mojibake, cheap to look for.
_SUSPECT = re.compile("[\u00c2-\u00c5\u00e2\u00ef\u00d0\u00d8][\u0080-\u00bf\u0152\u0153"
                      "\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2122]")
MAX_CELL = 20_000  # characters: a longer cell is no name, address or description


def repair(value: str) -> str:
    """The text with mojibake undone (ftfy), when it looks like mojibake; else unchanged."""
    if value and _SUSPECT.search(value):
        import ftfy  # only when needed: its import costs a fifth of a second

        return ftfy.fix_text(value, normalization="NFC")
    return value


def looks_mojibake(texts) -> bool:
    """Whether any of `texts` may hold mojibake: one search over them all (the mark never
    spans two of them, since the separator is in neither of its character classes)."""
    return _SUSPECT.search("\x1f".join(texts)) is not None


def decode_lines(data: bytes) -> tuple[str, str]:
    """Text of a file that is not UTF-8 as a whole: each line as UTF-8 when it is, else as
    Windows-1252. Returns the text and the encoding found ("cp1252", or "utf-8+cp1252")."""
    out, utf8 = [], 0
    for line in data.splitlines(keepends=True):
        try:
            out.append(line.decode("utf-8"))
            utf8 += any(b > 127 for b in line)
        except UnicodeDecodeError:
            out.append(line.decode("cp1252", errors="replace"))
    return "".join(out), "utf-8+cp1252" if utf8 else "cp1252"


def shorten(value: str, limit: int = 1000) -> str:
    """A cell kept in ops.rejects: its beginning and its length when it is huge."""
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"


# Invisible characters a person cannot see on a map nor type in a search: controls (bell,
# escape), bidirectional overrides that reverse how a name reads, zero-width spaces.
def _invisible(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cf") and not c.isspace()


@functools.cache
def _invisibles() -> dict[int, None]:
    # one str.translate deletes them all: a test per character was a sixth of staging
    return dict.fromkeys(c for c in range(sys.maxunicode + 1) if _invisible(chr(c)))


def clean_text(value: str | None) -> str | None:
    """Invisible characters removed, spaces folded; None when nothing is left."""
    if not value:
        return None
    # (printable ASCII has nothing to remove; DEL is a control too, once let through)
    if not value.isascii() or not value.isprintable():
        value = value.translate(_invisibles())
    value = " ".join(value.split())
    return value or None


@functools.cache
def combining_marks() -> dict[int, None]:
    """Every combining mark, for a `str.translate` that deletes them all in one call (a
    Python test per character cost most of the time of folding). Made on first use: 70 ms."""
    return dict.fromkeys(c for c in range(sys.maxunicode + 1)
                         if unicodedata.combining(chr(c)))
