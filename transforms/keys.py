"""The keys the clustering works on: a source record's own key, and the SIRET key that makes
records one place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from transforms.identifiers import is_placeholder_siret

# is_placeholder_siret's pattern for Arrow (RE2 reads \d as ASCII digits only)
_PLACEHOLDER_ASCII = r"^[0-9]{9}999[0-9]{2}$"


def record_key(source: str, source_id: str) -> str:
    """The key of one source record: it keeps a place's ID when the record's SIRET changes."""
    return f"record:{source}:{source_id}"


def record_key_parts(keys: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(source, source_id) of record keys, column by column: what record_key() joined (a
    source's name holds no colon, a source_id may)."""
    parts = pc.split_pattern(pc.utf8_slice_codeunits(keys, len("record:")), ":",
                             max_splits=1)
    return pc.list_element(parts, 0), pc.list_element(parts, 1)


def identity_key(siret: str | None, source: str, source_id: str) -> tuple[str, str]:
    """(key, rule): a real SIRET identifies a place; placeholders and blanks do not."""
    if siret and not is_placeholder_siret(siret):
        return f"siret:{siret}", "siret"
    return record_key(source, source_id), "source_record"


def signature_link(siret: object, signature: object) -> bool:
    """Whether an ASP record's signature SIRET and current SIRET make one place."""
    return bool(signature and siret and signature != siret
                and not is_placeholder_siret(signature))


# The same rules column by column, for a million records (a call per record cost seconds).
# Text with 64-bit offsets: every key of tens of millions of records is more than 2 GB.
TEXT = pa.large_string()


def joined(prefix: str, *columns: pa.Array) -> pa.Array:
    """prefix:column[:column] per row (null where a column is)."""
    return pc.binary_join_element_wise(pa.scalar(prefix, TEXT), *columns,
                                       pa.scalar(":", TEXT))

def text_column(records: pd.DataFrame, column: str) -> pa.Array:
    """A column of text as Arrow (nulls for a column the frame lacks)."""
    if column not in records:
        return pa.nulls(len(records), TEXT)
    return pa.array(records[column].to_numpy(dtype=object), type=TEXT, from_pandas=True)


def given(values: pa.Array) -> np.ndarray:
    """Neither null nor empty: what `if value` tests."""
    return pc.fill_null(pc.greater(pc.utf8_length(values), 0), False).to_numpy(
        zero_copy_only=False)


def placeholders(sirets: pa.Array) -> np.ndarray:
    """is_placeholder_siret() of each value (False for null), by Arrow's regex engine; the
    values it could read otherwise than Python's `re` (not ASCII, a line break) by re."""
    found = pc.fill_null(pc.match_substring_regex(sirets, _PLACEHOLDER_ASCII), False)
    found = found.to_numpy(zero_copy_only=False).copy()
    odd = pc.fill_null(pc.or_(pc.invert(pc.string_is_ascii(sirets)),
                              pc.match_substring(sirets, "\n")), False)
    for i in np.flatnonzero(odd.to_numpy(zero_copy_only=False)):
        found[i] = is_placeholder_siret(sirets[int(i)].as_py())
    return found


def identity_columns(records: pd.DataFrame) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Each record's key, its SIRET's key, and whether that SIRET identifies it: the
    identity key is the SIRET's key where True, else the record's (identity_key())."""
    sources, ids = text_column(records, "source"), text_column(records, "source_id")
    sirets = text_column(records, "siret")
    return (joined("record", sources, ids), joined("siret", sirets),
            given(sirets) & ~placeholders(sirets))


def identity_keys(records: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Each record's key and identity key, as record_key() and identity_key() give them."""
    rkeys, siret_keys, usable = identity_columns(records)
    return rkeys.to_pylist(), pc.if_else(pa.array(usable), siret_keys, rkeys).to_pylist()
