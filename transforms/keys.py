"""The keys the clustering works on: a source record's own key, and the SIRET key that makes
records one place."""

from __future__ import annotations

from transforms.identifiers import is_placeholder_siret


def record_key(source: str, source_id: str) -> str:
    """The key of one source record: it keeps a place's ID when the record's SIRET changes."""
    return f"record:{source}:{source_id}"


def identity_key(siret: str | None, source: str, source_id: str) -> tuple[str, str]:
    """(key, rule): a real SIRET identifies a place; placeholders and blanks do not."""
    if siret and not is_placeholder_siret(siret):
        return f"siret:{siret}", "siret"
    return record_key(source, source_id), "source_record"


def signature_link(siret: object, signature: object) -> bool:
    """Whether an ASP record's signature SIRET and current SIRET make one place."""
    return bool(signature and siret and signature != siret
                and not is_placeholder_siret(signature))
