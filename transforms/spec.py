"""The sources.toml contract: a typed, strict, immutable model (pydantic, extra keys forbidden).

Every error names the source (or the section) and the key, so a data team can fix a file it
did not write; all the problems of a file are reported at once. Relative paths are resolved
from the folder of the sources file.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from transforms.apis import KIND_FIELDS
from transforms.fields import MAPPABLE
from transforms.kinds import KNOWN_KINDS
from transforms.settings import (
    AlertSettings,
    Cron,
    Defaults,
    Expect,
    GeocoderSettings,
    MatchingSettings,
    Publication,
    RuntimeSettings,
    SiteSettings,
    SpecPath,
    StrictModel,
    Url,
    parse_duration,
    spec_problem,
    to_sheet,
)

__all__ = ["AlertSettings", "Defaults", "Expect", "GeocoderSettings", "MatchingSettings",
           "Publication", "RuntimeSettings", "SiteSettings", "SourceSpec", "Spec", "SpecError",
           "load_spec", "parse_duration", "parse_spec"]

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
_SECTIONS = ("defaults", "sources", "publication", "geocoder", "matching", "alerts", "site",
             "runtime")

# The départements, the unit public APIs are queried by, and the collectivités d'outre-mer
# that have SIAE (Saint-Pierre-et-Miquelon, Saint-Barthélemy, Saint-Martin).
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
COLLECTIVITES = ("975", "977", "978")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
class SpecError(ValueError):
    """A sources.toml that breaks the contract: one message per problem, each naming the
    source (or section) and the key."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class SourceSpec(StrictModel):
    name: str
    kind: str
    title: str = ""
    path: SpecPath | None = None
    url: Url | None = None
    token_env: str | None = None
    format: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: Annotated[str | int | None, BeforeValidator(to_sheet)] = None
    records_path: str | None = None
    schedule: Cron = Defaults().schedule
    priority: int = Defaults().priority
    timeout: float = Field(Defaults().timeout, gt=0)
    retries: int = Field(Defaults().retries, ge=0)
    enabled: bool = True
    columns: dict[str, str] = {}
    lookups: dict[str, dict[str, str]] = {}
    constants: dict[str, str] = {}
    ignore_columns: tuple[str, ...] = ()
    expect: Expect = Expect()
    base_url: Url | None = None
    dataset: str | None = None
    departements: tuple[str, ...] = ()
    rate_per_second: float | None = Field(None, gt=0)
    rate_per_minute: float | None = Field(None, gt=0)
    page_size: int | None = Field(None, ge=1, le=1000)
    annexes_path: SpecPath | None = None

    @field_validator("ignore_columns", "departements", mode="before")
    @classmethod
    def _tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in SUPPORTED_KINDS:
            raise spec_problem(
                f"kind '{value}' is not supported (supported: {', '.join(SUPPORTED_KINDS)})")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value is not None and value not in FORMATS:
            raise spec_problem(f"format '{value}' is not one of {', '.join(FORMATS)}")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError as exc:
                raise ValueError(f"'{value}' is not a known text encoding (e.g. utf-8, "
                                 "cp1252, latin-1)") from exc
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in "\"\r\n"):
            raise ValueError(f"must be one character such as ; , | or a tab, got {value!r}")
        return value

    @field_validator("departements")
    @classmethod
    def _departements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for d in value:
            if d not in DEPARTEMENTS + COLLECTIVITES:
                raise spec_problem(f"departements has {d!r}, not a département code")
        return value

    @field_validator("columns", "constants")
    @classmethod
    def _canonical(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key not in MAPPABLE_FIELDS:
                raise spec_problem(f"'{key}' is not a canonical field "
                                 f"(mappable: {', '.join(MAPPABLE_FIELDS)})")
        return value

    @field_validator("lookups")
    @classmethod
    def _lookups(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for key in value:
            if key not in MAPPABLE_FIELDS:
                raise spec_problem(f"lookups.{key} is not a canonical field")
        return value

    @model_validator(mode="after")
    def _kind_keys(self) -> SourceSpec:
        if not _NAME.match(self.name):
            raise ValueError("a source name is lower-case letters, digits and _ (it names the "
                             "source's tables)")
        common = set(type(self).model_fields) - set().union(*_KIND_KEYS.values())
        allowed = common | _KIND_KEYS[self.kind]
        for key in sorted(self.model_fields_set - allowed):
            other = [k for k, keys in _KIND_KEYS.items() if key in keys]
            hint = f" (a key of kind {', '.join(other)})" if other else ""
            raise ValueError(f"unknown key '{key}' for kind '{self.kind}'{hint}")
        if self.kind in ("file", "asp_fluxiae") and not self.path:
            raise ValueError(f"kind '{self.kind}' needs the key 'path'")
        if self.kind == "asp_fluxiae" and not self.annexes_path:
            raise ValueError("kind 'asp_fluxiae' needs the key 'annexes_path'")
        if self.kind == "http" and not self.url:
            raise ValueError("kind 'http' needs the key 'url'")
        if self.kind in ("file", "http") and "nom" not in self.columns \
                and "nom" not in self.constants:
            raise ValueError("missing required key 'columns.nom'")
        return self

    @property
    def min_rows(self) -> int:
        return self.expect.min_rows

    @property
    def max_drop_share(self) -> float:
        return self.expect.max_drop_share

    @property
    def max_age(self) -> dt.timedelta | None:
        return self.expect.max_age

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


class Spec(StrictModel):
    path: Path
    defaults: Defaults = Defaults()
    sources: dict[str, SourceSpec]
    publication: Publication = Publication()
    geocoder: GeocoderSettings = GeocoderSettings()
    matching: MatchingSettings = MatchingSettings()
    alerts: AlertSettings = AlertSettings()
    site: SiteSettings = SiteSettings()
    runtime: RuntimeSettings = RuntimeSettings()

    def selected(self, only: list[str] | None = None) -> list[SourceSpec]:
        """Enabled sources in file order, restricted to `only` when given."""
        if only:
            unknown = sorted(set(only) - set(self.sources))
            if unknown:
                raise SpecError(f"{self.path}: unknown source(s) {', '.join(unknown)}")
        return [s for n, s in self.sources.items() if s.enabled and (not only or n in only)]


# --- messages ---------------------------------------------------------------------------

_TYPE_NAMES = {"string_type": "a string", "int_type": "an integer", "float_type": "a number",
               "bool_type": "a boolean (true or false)", "list_type": "a list",
               "tuple_type": "a list", "dict_type": "a table", "model_type": "a table",
               "model_attributes_type": "a table", "int_from_float": "an integer"}


def _message(error: dict, path: Path) -> str:
    """One pydantic error as a sentence naming the source (or section) and the key."""
    loc = [str(p) for p in error["loc"]]
    if loc[:1] == ["sources"] and len(loc) >= 2:
        where, rest = f"source '{loc[1]}'", loc[2:]
    elif loc and loc[0] in _SECTIONS:
        where, rest = f"{path} [{loc[0]}]", loc[1:]
    else:
        where, rest = str(path), loc
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = "".join(f".{p}" for p in rest[:-1])
        return f"{where}{parent}: unknown key '{rest[-1]}'"
    if kind == "missing":
        key = ".".join(rest)
        if key == "kind":
            return f"{where}: missing required key 'kind' ({', '.join(SUPPORTED_KINDS)})"
        return f"{where}: missing required key '{key}'"
    dotted = ".".join(rest)
    if kind in _TYPE_NAMES:
        return f"{where}: {dotted} must be {_TYPE_NAMES[kind]}, got {error.get('input')!r}"
    if kind == "spec":
        return f"{where}: {error['ctx']['text']}"
    if kind == "value_error":
        text = str(error["ctx"]["error"])
        return f"{where}: {dotted}: {text}" if dotted else f"{where}: {text}"
    if kind == "literal_error" and rest[:1] == ["kinds"]:
        return (f"{where}: kinds has '{error.get('input')}' "
                f"(known: {', '.join(KNOWN_KINDS)})")
    return f"{where}: {dotted}: {error['msg']} (got {error.get('input')!r})"


def parse_spec(text: str, path: Path) -> Spec:
    """Parse sources.toml text; `path` locates the file (relative paths start at its folder).
    Raises SpecError with every problem found."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from exc
    problems = [f"{path}: unknown key '{k}' (allowed: {', '.join(_SECTIONS)})"
                for k in raw if k not in _SECTIONS]
    sources = raw.get("sources", {})
    if not isinstance(sources, dict) or not sources:
        problems.append(f"{path}: no [sources.<name>] table")
        raise SpecError(problems)
    defaults = raw.get("defaults", {})
    try:
        valid = Defaults.model_validate(defaults)
    except ValidationError:
        valid = None  # reported once, below, not again in every source
    inherited = {k: defaults[k] for k in ("schedule", "priority", "timeout", "retries")
                 if valid is not None and k in defaults}
    inherited_expect = valid.expect.model_dump(exclude_unset=True) if valid else {}
    shaped = {}
    for name, table in sources.items():
        if not isinstance(table, dict):
            problems.append(f"source '{name}': must be a table, got {table!r}")
            continue
        expect = table.get("expect", {})
        if isinstance(expect, dict):
            expect = {**inherited_expect, **expect}
        shaped[name] = {**inherited, "title": name, **table, "name": name, "expect": expect}
    matching = raw.get("matching", {})
    if isinstance(matching, dict) and "judgements" not in matching:
        matching = {**matching, "judgements": "judgements.csv"}
    if isinstance(matching, dict) and "whole_blocks_up_to" not in matching:
        # one place has one record per source: a larger block holds several places
        enabled = sum(1 for t in shaped.values() if t.get("enabled", True) is not False)
        matching = {**matching, "whole_blocks_up_to": max(2, enabled)}
    document = {**{k: v for k, v in raw.items() if k in _SECTIONS}, "sources": shaped,
                "matching": matching, "path": path}
    try:
        spec = Spec.model_validate(document, context={"base": path.parent})
    except ValidationError as exc:
        problems += [_message(e, path) for e in exc.errors(include_url=False)]
        spec = None
    if problems:
        # keep the file's order of problems, once each
        raise SpecError(list(dict.fromkeys(problems)))
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a sources.toml file."""
    p = Path(path).resolve()
    if not p.is_file():
        raise SpecError(f"{p}: sources file not found")
    return parse_spec(p.read_text(encoding="utf-8"), p)


_HOW_ASKED = {"replay", "batch_size", "rate_per_second", "timeout", "retries",
              "batches_in_flight"}


def spec_settings_repr(spec: Spec) -> str:
    """The settings that shape a consolidation, as stable text (for its inputs hash)."""
    names = [n for n, s in spec.sources.items() if s.enabled]
    parts: dict[str, Any] = {
        "defaults": spec.defaults.model_dump(mode="json"),
        "matching": spec.matching.model_dump(mode="json", exclude={"judgements"}),
        # how the geocoder is asked (batches, pace, patience) changes no answer: each
        # address is answered alone
        "geocoder": spec.geocoder.model_dump(mode="json", exclude=_HOW_ASKED),
        "publication": spec.publication.model_dump(mode="json"),
        "priorities": [(n, spec.sources[n].priority) for n in names],
    }
    return json.dumps(parts, sort_keys=True)
