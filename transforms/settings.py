"""The settings sections of sources.toml ([defaults], [publication], [geocoder], [matching],
[alerts]) as typed, strict, immutable models, and the value types they share (durations,
cron expressions, paths resolved from the sources file's folder, URLs, kinds)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Literal

from cronsim import CronSim, CronSimError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from transforms.kinds import KNOWN_KINDS, SIAE_KINDS

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([dhm])$")


def parse_duration(text: str) -> dt.timedelta:
    """"8d", "12h", "30m" → a timedelta."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 8d, 12h or 30m")
    value, unit = float(m.group(1)), m.group(2)
    return dt.timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: value})


# --- value types -------------------------------------------------------------------------


def spec_problem(text: str) -> PydanticCustomError:
    """A validation error whose text is the whole message (it names its key itself)."""
    return PydanticCustomError("spec", "{text}", {"text": text})


def _to_duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, dt.timedelta):
        return value
    raise ValueError(f"must be a duration like \"8d\", got {value!r}")


def _to_cron(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(f"must be a cron expression string, got {value!r}")
    try:
        CronSim(value, dt.datetime(2026, 1, 1))
    except (CronSimError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a cron expression ({exc})") from exc
    return value


def _to_path(value: object, info: ValidationInfo) -> object:
    if value is None or isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty path string, got {value!r}")
    base = (info.context or {}).get("base")
    return (base / value) if base else Path(value)


def to_sheet(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a sheet number counts from 0, got {value}")
        return value
    raise ValueError(f"must be a sheet name or number, got {value!r}")


def _to_url(value: object) -> object:
    if value is None:
        return value
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    return value.rstrip("/")


Duration = Annotated[dt.timedelta, BeforeValidator(_to_duration)]
Cron = Annotated[str, BeforeValidator(_to_cron)]
SpecPath = Annotated[Path, BeforeValidator(_to_path)]
Url = Annotated[str, BeforeValidator(_to_url)]
Kind = Literal["ACI", "AI", "EI", "ETTI", "EITI", "GEIQ", "EA", "EATT"]
assert set(Kind.__args__) == set(KNOWN_KINDS)  # type: ignore[attr-defined]


class StrictModel(BaseModel):
    # strict: a number is not a string, a boolean is not a number (TOML has real types)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Expect(StrictModel):
    min_rows: int = Field(1, ge=0)  # fewer usable rows fails the source; last good data kept
    # keeping fewer usable rows than (1 - this) x the last good staging's fails the source, its
    # last good data kept: a cut-off or partial export (1 turns the check off)
    max_drop_share: float = Field(0.5, ge=0, le=1)
    max_age: Duration | None = None  # no success for longer than this: the source is stale


class LocationSettings(StrictModel):
    max_km_outside_commune: float = Field(2.0, ge=0)


class Defaults(StrictModel):
    schedule: Cron = "0 6 * * *"
    kinds: tuple[Kind, ...] = SIAE_KINDS
    priority: int = 50
    timeout: float = Field(60.0, gt=0)
    retries: int = Field(3, ge=0)
    user_agent: str = "SIAE-Atlas/0.1 (open data pipeline; https://github.com/siae-atlas)"
    expect: Expect = Expect()
    location: LocationSettings = LocationSettings()
    timezone: str = "Europe/Paris"
    # Distinct raw payloads kept per source (0: all). The one behind the current staging is
    # always kept.
    keep_raw: int = Field(0, ge=0)

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds(cls, value: object) -> object:
        if isinstance(value, list):
            unknown = [k for k in value if k not in KNOWN_KINDS]
            if unknown:
                raise spec_problem(f"kinds has '{unknown[0]}' (known: {', '.join(KNOWN_KINDS)})")
            return tuple(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not a time zone (e.g. Europe/Paris)") from exc
        return value

    @property
    def min_rows(self) -> int:
        return self.expect.min_rows

    @property
    def max_age(self) -> dt.timedelta | None:
        return self.expect.max_age

    @property
    def max_km_outside_commune(self) -> float:
        return self.location.max_km_outside_commune


class Publication(StrictModel):
    keep: int = Field(5, ge=0)  # previous publications kept beside the current one
    max_drop_share: float = Field(0.10, ge=0, le=1)  # refuse losing more structures than this
    move_threshold_m: float = Field(100.0, ge=0)  # a point moving farther is in changes.json
    schedule: Cron = "30 7 * * *"  # the consolidation + publication deployment's cron
    # Copies of each release beside the local folder: S3-compatible buckets ("s3://bucket/
    # prefix"), credentials and endpoint from the environment (AWS_*), flows/targets.py.
    targets: list[str] = []
    # How long map sites may cache a target's current.json (release files never change).
    pointer_max_age: int = Field(60, ge=0)
    # processes encoding the files of a large release side by side; 0: one per core (≤ 4)
    workers: int = Field(0, ge=0)

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for target in value:
            if not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", target):
                raise ValueError(f"{target!r}: a target is s3://<bucket>[/<prefix>]")
        return [t.rstrip("/") for t in value]


class GeocoderSettings(StrictModel):
    enabled: bool = True
    base_url: Url = "https://data.geopf.fr/geocodage"
    replay: SpecPath | None = None  # a saved BAN answer file, for offline runs (the demo)
    batch_size: int = Field(5000, ge=1, le=50_000)  # under the 200,000 lines / 50 MB limit
    min_score: float = Field(0.75, ge=0, le=1)  # data·inclusion measured 0.75–0.8 as useful
    rate_per_second: float = Field(10.0, gt=0, le=50)  # the BAN allows 50 requests/s per IP
    # batches sent at once: the BAN takes seconds to answer a batch, and the flow reads one
    # answer while it works on the next (at most 8: a public service, shared)
    batches_in_flight: int = Field(2, ge=1, le=8)
    timeout: float = Field(300.0, gt=0)
    retries: int = Field(3, ge=0)
    retry_failed_after_days: float = Field(7.0, ge=0)  # failed answers are asked again then
    max_km_disagreement: float = Field(2.0, ge=0)  # a source point farther is flagged


class MatchingSettings(StrictModel):
    # Chosen on samples/matching_pairs.csv (scripts/make_matching_pairs.py): at 0.85 no false
    # merge and 99 % of the same-place pairs merged; below 0.60 no pair of the set is the
    # same place. Between the two, an analyst decides (siae review).
    merge_threshold: float = Field(0.85, ge=0, le=1)
    review_threshold: float = Field(0.60, ge=0, le=1)
    judgements: SpecPath | None = None  # the analysts' decisions, a CSV under version control
    # A block (commune + name word, address, phone or e-mail) of up to this many records has
    # all its pairs compared; in a larger one a pair needs a second shared key. In
    # sources.toml it defaults to the number of enabled sources: one place has one record per
    # source, so a larger block holds several places.
    whole_blocks_up_to: int | None = Field(None, ge=2)

    @model_validator(mode="after")
    def _bands(self) -> MatchingSettings:
        if self.review_threshold > self.merge_threshold:
            raise ValueError("0 <= review_threshold <= merge_threshold <= 1")
        return self


class AlertSettings(StrictModel):
    webhook_env: str = "SIAE_ALERT_WEBHOOK"  # the variable holding the webhook URL
    on_stale: bool = True  # alert for stale sources too, not only failures
    # An open problem is posted again only after this long, so a daily run does not repeat it.
    repeat_after: Duration = dt.timedelta(days=1)


class RuntimeSettings(StrictModel):
    """[runtime]: where the partitioned steps (matching, one task per group of départements)
    run. Never part of a consolidation's inputs: every runner gives the same result."""

    # "threads": Prefect's default runner, in the flow's process. "dask": prefect-dask, on
    # the cluster at dask_address, else on a temporary local cluster of dask_workers processes.
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None  # e.g. "tcp://scheduler:8786"
    dask_workers: int | None = Field(None, ge=1)  # temporary cluster; none: this machine's cores
    # Matching partitions; 0: one with threads (the GIL gives no gain), two per Dask worker.
    partitions: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _dask_only(self) -> RuntimeSettings:
        if self.task_runner != "dask" and (self.dask_address or self.dask_workers):
            raise ValueError('dask_address and dask_workers need task_runner = "dask"')
        return self


class SiteSettings(StrictModel):
    """[site]: the static mini-site built from each publication (flows/site.py)."""

    build: bool = True  # rebuild the site after each publication
    title: str = "Les structures d'insertion par l'activité économique"
    base_url: str = ""  # where the site is hosted (absolute links in JSON-LD, sitemap)
    # "signaler une erreur": a URL or mailto: link; {id} and {nom} are replaced
    report_url: str | None = None
    tiles: str | None = None  # a tile layer URL template; none: the départements' outlines
    attribution: str = ""
    keep: int = Field(2, ge=1)  # sites kept beside the current one
    # processes rendering the structure pages of a large build; 0: one per core (at most 4)
    workers: int = Field(0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        if value and not re.match(r"^https?://", value):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")
