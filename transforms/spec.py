"""The sources.toml contract: strict loading into typed, immutable specs.

Every error names the source and the key, so a data team can fix a file it did not write.
Relative paths are resolved from the folder of the sources file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transforms.apis import KIND_FIELDS
from transforms.fields import MAPPABLE
from transforms.kinds import KNOWN_KINDS, SIAE_KINDS

# Canonical fields a source may map a column to (the field table); derived fields such as
# `siren` or `region` are computed, never mapped. A mapped `departement` is only checked
# against the commune's (the commune wins) and used when the commune is unknown.
MAPPABLE_FIELDS = MAPPABLE
API_KINDS = ("datainclusion", "recherche_entreprises", "emplois")
SUPPORTED_KINDS = ("file", "http", *API_KINDS, "asp_fluxiae")
# Keys that only some kinds take; every other source key is common to all kinds.
_KIND_KEYS = {
    "file": {"path", "format", "encoding", "delimiter", "sheet", "records_path"},
    "http": {"url", "format", "encoding", "delimiter", "sheet", "records_path"},
    "datainclusion": {"base_url", "dataset", "path", "format"},
    "recherche_entreprises": {"base_url", "departements", "rate_per_second", "path"},
    "emplois": {"base_url", "departements", "rate_per_minute", "page_size", "path"},
    "asp_fluxiae": {"path", "annexes_path"},
}
FORMATS = ("csv", "xlsx", "json", "parquet")

_DEFAULT_KEYS = {
    "schedule",
    "kinds",
    "priority",
    "timeout",
    "retries",
    "user_agent",
    "expect",
    "location",
    "timezone",
    "keep_raw",
}
_COMMON_KEYS = {
    "title",
    "kind",
    "token_env",
    "schedule",
    "priority",
    "timeout",
    "retries",
    "enabled",
    "columns",
    "lookups",
    "constants",
    "ignore_columns",
    "expect",
}
_EXPECT_KEYS = {"min_rows", "max_age"}
_LOCATION_KEYS = {"max_km_outside_commune"}


# The 101 départements, the unit public APIs are queried by.
DEPARTEMENTS = (
    *(f"{n:02d}" for n in range(1, 20)),
    "2A",
    "2B",
    *(f"{n:02d}" for n in range(21, 96)),
    "971",
    "972",
    "973",
    "974",
    "976",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([dhm])$")


def parse_duration(text: str) -> dt.timedelta:
    """"8d", "12h", "30m" → a timedelta."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 8d, 12h or 30m")
    value, unit = float(m.group(1)), m.group(2)
    return dt.timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: value})


class SpecError(ValueError):
    """A sources.toml that breaks the contract; the message names the source and key."""


@dataclass(frozen=True)
class Defaults:
    schedule: str = "0 6 * * *"
    kinds: tuple[str, ...] = SIAE_KINDS
    priority: int = 50
    timeout: float = 60.0
    retries: int = 3
    user_agent: str = "SIAE-Atlas/0.1 (open data pipeline; https://github.com/siae-atlas)"
    min_rows: int = 1
    max_km_outside_commune: float = 2.0
    max_age: dt.timedelta | None = None  # older than this since the last success: stale
    timezone: str = "Europe/Paris"
    # Distinct raw payloads kept per source (0: all). The one behind the current staging is
    # always kept.
    keep_raw: int = 0


@dataclass(frozen=True)
class Publication:
    keep: int = 5  # previous publications kept beside the current one
    max_drop_share: float = 0.10  # refuse a publication losing more structures than this
    move_threshold_m: float = 100.0  # a point moving farther is listed in changes.json
    schedule: str = "30 7 * * *"  # the consolidation + publication deployment's cron


_PUBLICATION_KEYS = {"keep", "max_drop_share", "move_threshold_m", "schedule"}


def _parse_publication(raw: dict, where: str) -> Publication:
    _check_keys(where, raw, _PUBLICATION_KEYS)
    d = Publication()
    out = Publication(
        keep=_typed(where, "keep", raw.get("keep", d.keep), int),
        max_drop_share=float(
            _typed(where, "max_drop_share", raw.get("max_drop_share", d.max_drop_share),
                   (int, float))),
        move_threshold_m=float(
            _typed(where, "move_threshold_m", raw.get("move_threshold_m", d.move_threshold_m),
                   (int, float))),
        schedule=_typed(where, "schedule", raw.get("schedule", d.schedule), str),
    )
    if not 0 <= out.max_drop_share <= 1 or out.keep < 0:
        raise SpecError(f"{where}: max_drop_share is a share (0 to 1) and keep is not negative")
    return out


@dataclass(frozen=True)
class GeocoderSettings:
    enabled: bool = True
    base_url: str = "https://data.geopf.fr/geocodage"
    replay: Path | None = None  # a saved BAN answer file, for offline runs (the demo)
    batch_size: int = 5000  # rows per POST, well under the 200,000 lines / 50 MB limit
    min_score: float = 0.75  # data·inclusion measured 0.75–0.8 as the useful threshold
    rate_per_second: float = 10.0  # the BAN allows 50 requests/s per IP
    timeout: float = 300.0
    retries: int = 3
    retry_failed_after_days: float = 7.0  # failed or low-score answers are asked again then
    max_km_disagreement: float = 2.0  # a source point farther from the BAN's is flagged


_GEOCODER_KEYS = set(GeocoderSettings.__dataclass_fields__)


def _parse_geocoder(raw: dict, where: str, base: Path) -> GeocoderSettings:
    _check_keys(where, raw, _GEOCODER_KEYS)
    d = GeocoderSettings()
    num = (int, float)
    out = GeocoderSettings(
        enabled=_typed(where, "enabled", raw.get("enabled", d.enabled), bool),
        base_url=_typed(where, "base_url", raw.get("base_url", d.base_url), str).rstrip("/"),
        replay=(base / _typed(where, "replay", raw["replay"], str)) if "replay" in raw else None,
        batch_size=_typed(where, "batch_size", raw.get("batch_size", d.batch_size), int),
        min_score=float(_typed(where, "min_score", raw.get("min_score", d.min_score), num)),
        rate_per_second=float(
            _typed(where, "rate_per_second", raw.get("rate_per_second", d.rate_per_second), num)),
        timeout=float(_typed(where, "timeout", raw.get("timeout", d.timeout), num)),
        retries=_typed(where, "retries", raw.get("retries", d.retries), int),
        retry_failed_after_days=float(_typed(
            where, "retry_failed_after_days",
            raw.get("retry_failed_after_days", d.retry_failed_after_days), num)),
        max_km_disagreement=float(_typed(
            where, "max_km_disagreement", raw.get("max_km_disagreement", d.max_km_disagreement),
            num)),
    )
    if not 1 <= out.batch_size <= 50_000:
        raise SpecError(f"{where}: batch_size must be between 1 and 50000")
    if not 0 < out.rate_per_second <= 50:
        raise SpecError(f"{where}: rate_per_second must be above 0 and at most 50")
    if not 0 <= out.min_score <= 1:
        raise SpecError(f"{where}: min_score is between 0 and 1")
    if not out.base_url.startswith(("http://", "https://")):
        raise SpecError(f"{where}: base_url must start with http:// or https://")
    return out


@dataclass(frozen=True)
class MatchingSettings:
    # Chosen on samples/matching_pairs.csv (335 labelled pairs, scripts/make_matching_pairs.py):
    # at 0.85 no false merge and 99 % of the same-place pairs merged; below 0.60 no pair of the
    # set is the same place. Between the two, an analyst decides (siae review).
    merge_threshold: float = 0.85
    review_threshold: float = 0.60
    judgements: Path | None = None  # the analysts' decisions, a CSV to keep under version control


def _parse_matching(raw: dict, where: str, base: Path) -> MatchingSettings:
    _check_keys(where, raw, {"merge_threshold", "review_threshold", "judgements"})
    d = MatchingSettings()
    out = MatchingSettings(
        merge_threshold=float(_typed(where, "merge_threshold",
                                     raw.get("merge_threshold", d.merge_threshold), (int, float))),
        review_threshold=float(_typed(where, "review_threshold",
                                      raw.get("review_threshold", d.review_threshold),
                                      (int, float))),
        judgements=base / _typed(where, "judgements", raw.get("judgements", "judgements.csv"),
                                 str),
    )
    if not 0 <= out.review_threshold <= out.merge_threshold <= 1:
        raise SpecError(f"{where}: 0 <= review_threshold <= merge_threshold <= 1")
    return out


@dataclass(frozen=True)
class AlertSettings:
    webhook_env: str = "SIAE_ALERT_WEBHOOK"  # the variable holding the webhook URL
    on_stale: bool = True  # alert for stale sources too, not only failures
    # An open problem is posted again only after this long, so a daily run does not repeat it.
    repeat_after: dt.timedelta = dt.timedelta(days=1)


def _parse_alerts(raw: dict, where: str) -> AlertSettings:
    _check_keys(where, raw, {"webhook_env", "on_stale", "repeat_after"})
    d = AlertSettings()
    repeat = _duration(where, "repeat_after", raw.get("repeat_after"))
    return AlertSettings(
        webhook_env=_typed(where, "webhook_env", raw.get("webhook_env", d.webhook_env), str),
        on_stale=_typed(where, "on_stale", raw.get("on_stale", d.on_stale), bool),
        repeat_after=d.repeat_after if repeat is None else repeat,
    )


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str
    title: str = ""
    path: Path | None = None
    url: str | None = None
    token_env: str | None = None
    format: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | int | None = None
    records_path: str | None = None
    schedule: str = Defaults.schedule
    priority: int = Defaults.priority
    timeout: float = Defaults.timeout
    retries: int = Defaults.retries
    enabled: bool = True
    columns: dict[str, str] = field(default_factory=dict)
    lookups: dict[str, dict[str, str]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    ignore_columns: tuple[str, ...] = ()
    min_rows: int = Defaults.min_rows
    max_age: dt.timedelta | None = None
    base_url: str | None = None
    dataset: str | None = None
    departements: tuple[str, ...] = ()
    rate_per_second: float | None = None
    rate_per_minute: float | None = None
    page_size: int | None = None
    annexes_path: Path | None = None

    @property
    def mapping(self) -> dict[str, str]:
        """Canonical field → column: the kind's own columns, overridden by `columns`."""
        own = {f: f for f in KIND_FIELDS.get(self.kind, ())}
        return {**own, **self.columns}

    @property
    def offline(self) -> bool:
        """An API kind reading a saved payload from `path` instead of calling the API."""
        return self.kind in API_KINDS and self.path is not None

    def fingerprint(self) -> str:
        """Hash of everything that shapes staging, to tell a re-stage is needed."""
        payload = {
            "columns": self.columns,
            "lookups": self.lookups,
            "constants": self.constants,
            "format": self.format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "sheet": self.sheet,
            "records_path": self.records_path,
            "min_rows": self.min_rows,
            "kind": self.kind,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Spec:
    path: Path
    defaults: Defaults
    sources: dict[str, SourceSpec]
    publication: Publication = field(default_factory=Publication)
    geocoder: GeocoderSettings = field(default_factory=GeocoderSettings)
    matching: MatchingSettings = field(default_factory=MatchingSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    def selected(self, only: list[str] | None = None) -> list[SourceSpec]:
        """Enabled sources in file order, restricted to `only` when given."""
        if only:
            unknown = sorted(set(only) - set(self.sources))
            if unknown:
                raise SpecError(f"{self.path}: unknown source(s) {', '.join(unknown)}")
        return [s for n, s in self.sources.items() if s.enabled and (not only or n in only)]


def _check_keys(where: str, table: dict, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")


def _typed(where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SpecError(f"{where}: key '{key}' must be a {names}, got {value!r}")
    return value


def _str_table(where: str, key: str, value: Any) -> dict[str, str]:
    _typed(where, key, value, dict)
    for k, v in value.items():
        if not isinstance(v, str):
            raise SpecError(f"{where}: {key}.{k} must be a string, got {v!r}")
    return dict(value)


def _parse_defaults(raw: dict, where: str) -> Defaults:
    _check_keys(where, raw, _DEFAULT_KEYS)
    expect = raw.get("expect", {})
    _check_keys(f"{where}.expect", _typed(where, "expect", expect, dict), _EXPECT_KEYS)
    location = raw.get("location", {})
    _check_keys(f"{where}.location", _typed(where, "location", location, dict), _LOCATION_KEYS)
    kinds = tuple(raw.get("kinds", Defaults.kinds))
    for k in kinds:
        if k not in KNOWN_KINDS:
            raise SpecError(f"{where}: kinds has '{k}' (known: {', '.join(KNOWN_KINDS)})")
    d = Defaults()
    return Defaults(
        schedule=_typed(where, "schedule", raw.get("schedule", d.schedule), str),
        kinds=kinds,
        priority=_typed(where, "priority", raw.get("priority", d.priority), int),
        timeout=float(_typed(where, "timeout", raw.get("timeout", d.timeout), (int, float))),
        retries=_typed(where, "retries", raw.get("retries", d.retries), int),
        user_agent=_typed(where, "user_agent", raw.get("user_agent", d.user_agent), str),
        min_rows=_typed(where, "expect.min_rows", expect.get("min_rows", d.min_rows), int),
        max_age=_duration(where, "expect.max_age", expect.get("max_age")),
        timezone=_typed(where, "timezone", raw.get("timezone", d.timezone), str),
        keep_raw=_typed(where, "keep_raw", raw.get("keep_raw", d.keep_raw), int),
        max_km_outside_commune=float(
            _typed(
                where,
                "location.max_km_outside_commune",
                location.get("max_km_outside_commune", d.max_km_outside_commune),
                (int, float),
            )
        ),
    )


def _parse_source(name: str, raw: dict, defaults: Defaults, base: Path) -> SourceSpec:
    where = f"source '{name}'"
    if not _NAME.match(name):
        raise SpecError(
            f"{where}: a source name is lower-case letters, digits and _ "
            "(it names the source's tables)"
        )
    _typed(where, name, raw, dict)
    if "kind" not in raw:
        raise SpecError(f"{where}: missing required key 'kind' ({', '.join(SUPPORTED_KINDS)})")
    kind = raw["kind"]
    if kind not in SUPPORTED_KINDS:
        raise SpecError(
            f"{where}: kind '{kind}' is not supported (supported: {', '.join(SUPPORTED_KINDS)})"
        )
    allowed = _COMMON_KEYS | _KIND_KEYS[kind]
    for key in raw:
        if key not in allowed:
            other = [k for k, keys in _KIND_KEYS.items() if key in keys]
            hint = f" (a key of kind {', '.join(other)})" if other else ""
            raise SpecError(f"{where}: unknown key '{key}' for kind '{kind}'{hint}")
    path = raw.get("path")
    url = raw.get("url")
    if kind in ("file", "asp_fluxiae") and not path:
        raise SpecError(f"{where}: kind '{kind}' needs the key 'path'")
    if kind == "asp_fluxiae" and not raw.get("annexes_path"):
        raise SpecError(f"{where}: kind 'asp_fluxiae' needs the key 'annexes_path'")
    if kind == "http" and not url:
        raise SpecError(f"{where}: kind 'http' needs the key 'url'")
    for key in ("url", "base_url"):
        value = raw.get(key)
        if value is not None and not str(value).startswith(("http://", "https://")):
            raise SpecError(f"{where}: {key} must start with http:// or https://, got {value!r}")
    departements = tuple(_typed(where, "departements", raw.get("departements", []), list))
    for d in departements:
        if d not in DEPARTEMENTS:
            raise SpecError(f"{where}: departements has {d!r}, not a département code")
    fmt = raw.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise SpecError(f"{where}: format '{fmt}' is not one of {', '.join(FORMATS)}")
    columns = _str_table(where, "columns", raw.get("columns", {}))
    constants = _str_table(where, "constants", raw.get("constants", {}))
    for key in list(columns) + list(constants):
        if key not in MAPPABLE_FIELDS:
            raise SpecError(
                f"{where}: '{key}' is not a canonical field "
                f"(mappable: {', '.join(MAPPABLE_FIELDS)})"
            )
    if kind in ("file", "http") and "nom" not in columns and "nom" not in constants:
        raise SpecError(f"{where}: missing required key 'columns.nom'")
    lookups_raw = _typed(where, "lookups", raw.get("lookups", {}), dict)
    lookups = {}
    for fld, table in lookups_raw.items():
        if fld not in MAPPABLE_FIELDS:
            raise SpecError(f"{where}: lookups.{fld} is not a canonical field")
        lookups[fld] = _str_table(where, f"lookups.{fld}", table)
    expect = _typed(where, "expect", raw.get("expect", {}), dict)
    _check_keys(f"{where}.expect", expect, _EXPECT_KEYS)
    ignore = _typed(where, "ignore_columns", raw.get("ignore_columns", []), list)
    sheet = raw.get("sheet")
    if sheet is not None:
        _typed(where, "sheet", sheet, (str, int))
    return SourceSpec(
        name=name,
        kind=kind,
        title=_typed(where, "title", raw.get("title", name), str),
        path=(base / path) if path else None,
        url=url,
        token_env=_typed(where, "token_env", raw["token_env"], str) if "token_env" in raw else None,
        format=fmt,
        encoding=_typed(where, "encoding", raw["encoding"], str) if "encoding" in raw else None,
        delimiter=_typed(where, "delimiter", raw["delimiter"], str) if "delimiter" in raw else None,
        sheet=sheet,
        records_path=(
            _typed(where, "records_path", raw["records_path"], str)
            if "records_path" in raw
            else None
        ),
        schedule=_typed(where, "schedule", raw.get("schedule", defaults.schedule), str),
        priority=_typed(where, "priority", raw.get("priority", defaults.priority), int),
        timeout=float(_typed(where, "timeout", raw.get("timeout", defaults.timeout), (int, float))),
        retries=_typed(where, "retries", raw.get("retries", defaults.retries), int),
        enabled=_typed(where, "enabled", raw.get("enabled", True), bool),
        columns=columns,
        lookups=lookups,
        constants=constants,
        ignore_columns=tuple(str(c) for c in ignore),
        min_rows=_typed(where, "expect.min_rows", expect.get("min_rows", defaults.min_rows), int),
        max_age=_duration(where, "expect.max_age", expect.get("max_age")) or defaults.max_age,
        base_url=raw.get("base_url"),
        dataset=_typed(where, "dataset", raw["dataset"], str) if "dataset" in raw else None,
        departements=departements,
        rate_per_second=_rate(where, raw, "rate_per_second"),
        rate_per_minute=_rate(where, raw, "rate_per_minute"),
        page_size=_typed(where, "page_size", raw["page_size"], int) if "page_size" in raw else None,
        annexes_path=(base / raw["annexes_path"]) if raw.get("annexes_path") else None,
    )


def _duration(where: str, key: str, value: object) -> dt.timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(_typed(where, key, value, str))
    except ValueError as exc:
        raise SpecError(f"{where}: {key}: {exc}") from exc


def _rate(where: str, raw: dict, key: str) -> float | None:
    if key not in raw:
        return None
    value = float(_typed(where, key, raw[key], (int, float)))
    if value <= 0:
        raise SpecError(f"{where}: {key} must be positive")
    return value


def parse_spec(text: str, path: Path) -> Spec:
    """Parse sources.toml text; `path` locates the file (relative paths start at its folder)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from exc
    _check_keys(str(path), raw,
                {"defaults", "sources", "publication", "geocoder", "matching", "alerts"})
    defaults = _parse_defaults(
        _typed(str(path), "defaults", raw.get("defaults", {}), dict), f"{path} [defaults]"
    )
    sources_raw = _typed(str(path), "sources", raw.get("sources", {}), dict)
    if not sources_raw:
        raise SpecError(f"{path}: no [sources.<name>] table")
    base = path.parent
    sources = {n: _parse_source(n, s, defaults, base) for n, s in sources_raw.items()}
    publication = _parse_publication(
        _typed(str(path), "publication", raw.get("publication", {}), dict),
        f"{path} [publication]",
    )
    geocoder = _parse_geocoder(
        _typed(str(path), "geocoder", raw.get("geocoder", {}), dict), f"{path} [geocoder]", base
    )
    matching = _parse_matching(
        _typed(str(path), "matching", raw.get("matching", {}), dict), f"{path} [matching]", base
    )
    alerts = _parse_alerts(_typed(str(path), "alerts", raw.get("alerts", {}), dict),
                           f"{path} [alerts]")
    return Spec(path=path, defaults=defaults, sources=sources, publication=publication,
                geocoder=geocoder, matching=matching, alerts=alerts)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a sources.toml file."""
    p = Path(path).resolve()
    if not p.is_file():
        raise SpecError(f"{p}: sources file not found")
    return parse_spec(p.read_text(encoding="utf-8"), p)
