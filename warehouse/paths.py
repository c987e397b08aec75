"""Where the warehouse's data live: `SIAE_HOME`, else this package's folder (git-ignored)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class WarehousePaths:
    home: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> WarehousePaths:
        """The flag wins, then the SIAE_HOME environment variable, then `warehouse/`."""
        chosen = home or os.environ.get("SIAE_HOME") or _PACKAGE_DIR
        return cls(Path(chosen).resolve())

    @property
    def database(self) -> Path:
        return self.home / "siae.duckdb"

    @property
    def snapshot(self) -> Path:
        """The analysts' copy of the warehouse (warehouse/snapshot.py): what they open."""
        return self.home / "analysts.duckdb"

    @property
    def raw(self) -> Path:
        return self.home / "raw"

    @property
    def publish(self) -> Path:
        """The current publication: a link to a folder of `releases/`."""
        return self.home / "publish"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def geojson(self) -> Path:
        return self.publish / "siae.geojson"

    def ensure(self) -> WarehousePaths:
        """Create the folders (`publish` is made by the first publication)."""
        for p in (self.home, self.raw):
            p.mkdir(parents=True, exist_ok=True)
        return self

    def ensure_releases(self) -> WarehousePaths:
        self.ensure()
        self.releases.mkdir(exist_ok=True)
        return self
