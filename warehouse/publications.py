"""What a publication reads (marts.siae, the sources' states, the redirects) and the record
of every release swapped in (`ops.publications`, read as `marts.publications`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

import duckdb

from transforms.frames import column_values, rows_of
from warehouse.db import fetch_frame, table_exists


def published_rows(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The rows of marts.siae, sorted by structure_id."""
    return rows_of(fetch_frame(con, "SELECT * FROM marts.siae ORDER BY structure_id"))


def held_back(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Structures kept in the warehouse but not published, by reason."""
    if not table_exists(con, "core", "structures"):
        return {"closed": 0, "unconfirmed_kinds": 0}
    closed, unconfirmed = con.execute(
        "SELECT count(*) FILTER (WHERE etat_administratif = 'F'), count(*) FILTER (WHERE "
        "coalesce(etat_administratif, 'A') <> 'F' AND len(types) = 0) FROM core.structures"
    ).fetchall()[0]
    return {"closed": closed, "unconfirmed_kinds": unconfirmed}


def source_contents(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(source, sha256, staged_at, rows_staged) of every staged source, by name."""
    return con.execute("SELECT source, sha256, staged_at, rows_staged FROM ops.source_state "
                       "ORDER BY source").fetchall()


def redirects(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """IDs no longer used → the ID they were merged into."""
    if not table_exists(con, "core", "structure_redirects"):
        return {}
    return dict(con.execute("SELECT from_id, to_id FROM core.structure_redirects "
                            "ORDER BY from_id").fetchall())


def record_publication(con: duckdb.DuckDBPyConnection, release_id: str, at: dt.datetime,
                       structures: int, features: int, counts: dict[str, int],
                       files: dict[str, dict], previous: str | None) -> None:
    """A release swapped in: counts, what changed, each file's bytes and sha256."""
    con.execute("INSERT INTO ops.publications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [release_id, at, structures, features, counts["added"], counts["removed"],
                 counts["moved"], counts["changed"], json.dumps(files), previous])


def publications(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Every recorded release, newest first: (release_id, published_at, structures, features,
    added, removed, moved, changed)."""
    return con.execute(
        "SELECT release_id, published_at, structures, features, added, removed, moved, "
        "changed FROM ops.publications ORDER BY published_at DESC").fetchall()


def published_kinds(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """structure_id → published kinds, for every structure of marts.siae."""
    return dict(con.execute("SELECT structure_id, types FROM marts.siae").fetchall())


_PROVENANCE = """
    SELECT p.structure_id, p.champ, p.source,
           CAST(coalesce(max(r.date_maj), CAST(max(st.staged_at) AS DATE)) AS VARCHAR) AS day
    FROM marts.siae_provenance p
    LEFT JOIN core.links l ON l.structure_id = p.structure_id AND l.source = p.source
    LEFT JOIN core.records r ON r.source = l.source AND r.source_id = l.source_id
    LEFT JOIN ops.source_state st ON st.source = p.source
    {where}
    GROUP BY ALL"""


def value_sources(con: duckdb.DuckDBPyConnection, ids: Iterable[str] | None = None
                  ) -> dict[str, dict[str, tuple]]:
    """structure_id → field → (source, date as YYYY-MM-DD): which source gave each published
    value and how fresh it is (that source's record date_maj, else when the source was
    staged). `ids`: only these structures (a site rebuild renders a few pages)."""
    if not table_exists(con, "core", "links"):
        return {}
    where, params = "", []
    if ids is not None:
        where, params = "WHERE p.structure_id IN (SELECT unnest(?))", [sorted(set(ids))]
        if not params[0]:
            return {}
    # Read column by column through Arrow, the dates as text, one row per structure with its
    # fields as lists: a national site has four million values, and a Python step per value
    # cost twice the whole query.
    table = con.sql(
        "SELECT structure_id, list(champ), list(source), list(day) FROM ("
        f"{_PROVENANCE.format(where=where)}) GROUP BY structure_id",
        params=params or None).to_arrow_table()
    # one str per distinct field name, source and day: four million values at 1M
    ids_, fields, sources, days = (column_values(c) for c in table.columns)
    return {sid: dict(zip(f, zip(s, d, strict=True), strict=True))
            for sid, f, s, d in zip(ids_, fields, sources, days, strict=True)}


def provenance_digests(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """structure_id → a digest of what `value_sources` gives it: a structure's page is made
    again only when its row or this changes, without reading every value in Python.

    The sum of each value's hash and their count: order does not count, and no list is cast
    to text (an md5 of the sorted list took 5.5-6.6 s at 1M, this 2.5-2.9 s). DuckDB's hash
    may change with its version: a new DuckDB then renders every page once."""
    if not table_exists(con, "core", "links"):
        return {}
    return dict(con.execute(
        "SELECT structure_id, CAST(sum(hash(champ, source, day)::HUGEINT) AS VARCHAR) || ':' "
        f"|| count(*) FROM ({_PROVENANCE.format(where='')}) GROUP BY structure_id"
    ).fetchall())


def version_dates(con: duckdb.DuckDBPyConnection) -> dict[str, dt.date]:
    """structure_id → the day its current version was recorded (core.structures_history):
    when our record of it last changed."""
    if not table_exists(con, "core", "structures_history"):
        return {}
    return dict(con.execute(
        "SELECT structure_id, CAST(max(valid_from) AS DATE) FROM core.structures_history "
        "WHERE valid_to IS NULL GROUP BY 1").fetchall())


def inputs_digest(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of everything a release's data files are built from (marts.siae, the
    redirects, the current versions' dates), computed in DuckDB without reading the rows into
    Python: equal digests give the same files. Row order does not count. The staged sources
    are left out: a source staged again whose published rows are the same changes no file
    (a new release is made only when a file changes)."""
    parts = [duckdb.__version__,  # its hash function may change between versions
             str(con.execute("SELECT count(*), sum(hash(s)::HUGEINT) FROM marts.siae s")
                 .fetchall()[0])]
    for table, sql in (
            ("structure_redirects", "SELECT count(*), sum(hash(from_id, to_id)::HUGEINT) "
                                    "FROM core.structure_redirects"),
            ("structures_history", "SELECT count(*), sum(hash(structure_id, valid_from)::HUGEINT) "
                                   "FROM core.structures_history WHERE valid_to IS NULL")):
        if table_exists(con, "core", table):
            parts.append(str(con.execute(sql).fetchall()[0]))
    return "|".join(parts)
