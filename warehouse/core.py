"""The core layer: what a consolidation reads (known IDs, the last consolidation's records,
successions) and writes in one transaction (records, links, candidates, judgements,
redirects, structures, IDs, successions, disagreements, marts, history, comments)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pyarrow as pa

from transforms.frames import column_values, rows_of
from transforms.keys import record_key
from warehouse import publications
from warehouse.comments import apply_comments
from warehouse.db import (
    CANDIDATE_TYPES,
    JUDGEMENT_TYPES,
    LINK_TYPES,
    MARTS_SQL,
    RECORD_TYPES,
    STRUCTURE_TYPES,
    create_table,
    fetch_frame,
    fit_memory_limit,
    replace_table,
    table_exists,
    transaction,
)
from warehouse.history import record_history
from warehouse.staging import StagedRecords, copy_records

REDIRECT_TYPES = {"from_id": "VARCHAR", "to_id": "VARCHAR"}
POSTE_TYPES = {"structure_id": "VARCHAR", "source": "VARCHAR", "source_id": "VARCHAR",
               "rome": "VARCHAR", "appellation": "VARCHAR", "recrutement_ouvert": "BOOLEAN",
               "cree_le": "DATE", "mis_a_jour_le": "DATE"}
# ops.geo_disagreements keeps the flags of this many consolidations (run IDs sort by time).
DISAGREEMENT_RUNS_KEPT = 10
DISAGREEMENT_COLUMNS = ["structure_id", "source", "source_longitude", "source_latitude",
                        "ban_longitude", "ban_latitude", "distance_km", "reason"]


@dataclass(frozen=True)
class Identities:
    """The persisted identities a merge starts from."""

    known: dict[str, str]  # identity key → structure_id
    first_seen: dict[str, object]  # structure_id → when its oldest key was first seen
    previous: pd.DataFrame  # the last consolidation's records, with their structure_id
    renamed: list[tuple[str, str]]  # (old_key, new_key) successions, oldest first
    redirects: dict[str, str] = field(default_factory=dict)  # the last consolidation's


def identities(con: duckdb.DuckDBPyConnection, staged: list[str] | None = None) -> Identities:
    """Known IDs, their age, the last consolidation's records, the successions and the
    redirects.
    `staged`: the sources whose stagings the merge reads; the previous records are then only
    those none of these stagings still holds (the only ones a new record can succeed),
    not every record of the country."""
    # through Arrow: fetchall builds a tuple per row (1.5 million keys at 1M: 1.7-2.2 s
    # against 0.8-1.1 s)
    ids = con.sql("SELECT identity_key, structure_id FROM core.structure_ids").to_arrow_table()
    # a place's keys share one str of its ID
    known = dict(zip(ids.column(0).to_pylist(), column_values(ids.column(1)), strict=True))
    first_seen = dict(con.execute(
        "SELECT structure_id, min(first_seen) FROM core.structure_ids GROUP BY ALL").fetchall())
    # The last consolidation's records (whatever their schema then) for succession.
    gone = ""
    if staged:
        still = " UNION ALL ".join(f"SELECT source, source_id FROM staging.{n}"
                                   for n in staged)
        gone = f" ANTI JOIN ({still}) s USING (source, source_id)"
    previous = (fetch_frame(con, "SELECT r.*, l.structure_id FROM core.records r JOIN "
                                 f"core.links l USING (source, source_id){gone}")
                if table_exists(con, "core", "records") else pd.DataFrame())
    renamed = con.execute("SELECT old_key, new_key FROM core.id_successions "
                          "ORDER BY decided_at, new_key").fetchall()
    return Identities(known, first_seen, previous, [tuple(r) for r in renamed],
                      publications.redirects(con))


@dataclass
class CoreTables:
    """Everything one consolidation writes into the core layer. `write_core` drops each
    table once written (the field becomes None): at 1M the IDs' dicts and the links were
    about 190 MB held through the structures' write, the locate step's peak."""

    records: pd.DataFrame | pa.Table | StagedRecords  # the rows, or the stagings they are
    # (None: written, see write_core)
    links: pd.DataFrame | pa.Table | None
    candidates: pd.DataFrame | pa.Table | None
    judgements: pd.DataFrame
    redirects: Mapping[str, str]
    structures: pd.DataFrame | None  # located (None: write_core's `located` gives them)
    new_ids: Mapping[str, str] | None  # keys first seen now → structure_id
    seen_keys: Iterable[str] | None  # every key still in use
    successions: list[tuple[str, str, str, float]]  # (new_key, old_key, structure_id, score)
    disagreements: list[list] | None  # rows of DISAGREEMENT_COLUMNS (as `structures`)
    postes: list[list] = field(default_factory=list)  # rows of POSTE_TYPES
    # known keys moved to a new ID (a place split off the one that kept theirs)
    moved_ids: Mapping[str, str] | None = field(default_factory=dict)


def write_core(con: duckdb.DuckDBPyConnection, tables: CoreTables, run_id: str,
               now: dt.datetime,
               located: Callable[[], tuple[pd.DataFrame, list[list]]] | None = None) -> dict:
    """Replace the core tables, record IDs, successions and disagreements, recreate the marts
    and the history, in one transaction. Returns the history's counts. `located`, when
    given, gives the structures and the disagreements (in place of the tables') once what
    does not depend on them is written: the caller locates them meanwhile. `tables` is
    emptied as it is written: pass the only references, and new tables to write again."""
    # the IDs' key index must fit in DuckDB's memory (a first run's are all new)
    fit_memory_limit(con, len(tables.new_ids) + len(tables.records))
    with transaction(con):
        if isinstance(tables.records, StagedRecords):
            create_table(con, "core.records", RECORD_TYPES)
            copy_records(con, "core.records", tables.records)
        else:
            replace_table(con, "core.records", tables.records, RECORD_TYPES)
        replace_table(con, "core.links", tables.links, LINK_TYPES)
        replace_table(con, "core.match_candidates", tables.candidates, CANDIDATE_TYPES)
        tables.links = tables.candidates = None
        replace_table(con, "core.judgements", tables.judgements, JUDGEMENT_TYPES)
        replace_table(con, "core.structure_redirects", pd.DataFrame(
            sorted(tables.redirects.items()), columns=list(REDIRECT_TYPES), dtype=object),
            REDIRECT_TYPES)
        replace_table(con, "core.postes", pd.DataFrame(tables.postes, columns=list(POSTE_TYPES),
                                                       dtype=object), POSTE_TYPES)
        # Arrow columns, sorted by DuckDB: at 1M, sorting a million and a half keys in
        # Python and making a frame of them took 3.9 s
        # (locals read by DuckDB by their names, not registered: see insert_rows)
        _new_ids = pa.table({  # noqa: F841
            "identity_key": pa.array(list(tables.new_ids), pa.string()),
            "structure_id": pa.array(list(tables.new_ids.values()), pa.string())})
        con.execute("INSERT INTO core.structure_ids SELECT identity_key, structure_id, ?, ? "
                    "FROM _new_ids ORDER BY identity_key", [now, now])
        del _new_ids
        if tables.moved_ids:
            # first seen under their new ID now: the place split off is younger than the one
            # that kept the old ID, which then wins it back if an analyst merges them again
            _moved_ids = pa.table({  # noqa: F841
                "identity_key": pa.array(list(tables.moved_ids), pa.string()),
                "structure_id": pa.array(list(tables.moved_ids.values()), pa.string())})
            con.execute("UPDATE core.structure_ids s SET structure_id = m.structure_id, "
                        "first_seen = ? FROM _moved_ids m WHERE s.identity_key = "
                        "m.identity_key", [now])
            del _moved_ids
        # every key still in use (SIRETs and source records), not only the displayed one;
        # unsorted: sorting a national run's 1.5 million keys took a second. The keys just
        # inserted are seen now already (a first run's are all of them: 1 s at 1M).
        _seen_ids = pa.table({  # noqa: F841
            "identity_key": pa.array(list(tables.seen_keys), pa.string())})
        con.execute("UPDATE core.structure_ids SET last_seen = ? WHERE last_seen <> ? AND "
                    "identity_key IN (SELECT identity_key FROM _seen_ids)", [now, now])
        del _seen_ids
        tables.new_ids = tables.moved_ids = tables.seen_keys = None
        if tables.successions:
            con.executemany("INSERT INTO core.id_successions VALUES (?, ?, ?, ?, ?, ?)",
                            [[now, run_id, *s] for s in tables.successions])
        if located is None:
            structures, flags = tables.structures, tables.disagreements
        else:
            structures, flags = located()
        replace_table(con, "core.structures", structures, STRUCTURE_TYPES)
        if flags:
            # One INSERT from a frame: executemany goes row by row (a second for thousands).
            _flags = pd.DataFrame(  # noqa: F841
                [[run_id, *f] for f in flags], dtype=object,
                columns=["run_id", *DISAGREEMENT_COLUMNS])
            con.execute("INSERT INTO ops.geo_disagreements BY NAME SELECT * FROM _flags")
            del _flags
        keep_recent_disagreements(con)
        con.execute(MARTS_SQL)
        history = record_history(con, now, run_id)
        apply_comments(con)  # the tables just replaced lost theirs
    return history


def keep_recent_disagreements(con: duckdb.DuckDBPyConnection,
                              runs: int = DISAGREEMENT_RUNS_KEPT) -> int:
    """Delete the geocoding disagreements flagged before the last `runs` consolidations;
    returns how many went. Each consolidation flags every disagreement again: the last runs'
    flags show when one appeared, and the table stays the size of a few runs."""
    return con.execute(
        "DELETE FROM ops.geo_disagreements WHERE run_id NOT IN (SELECT run_id FROM "
        "(SELECT DISTINCT run_id FROM ops.geo_disagreements) ORDER BY run_id DESC LIMIT ?)",
        [runs]).fetchall()[0][0]


def structure_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many structures core.structures holds (0 before the first consolidation)."""
    if not table_exists(con, "core", "structures"):
        return 0
    return con.execute("SELECT count(*) FROM core.structures").fetchall()[0][0]


def review_pairs(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], list[dict]]:
    """The matcher's pairs in the review band (best score first) and the records they
    name."""
    pairs = fetch_frame(con, "SELECT * FROM core.match_candidates WHERE band = 'review' "
                             "ORDER BY score DESC, left_source, left_source_id")
    records = fetch_frame(con, "SELECT * FROM core.records")
    return rows_of(pairs), rows_of(records)


def record_structures(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, str]]:
    """(source, source_id, row_number, structure_id) of every record of the last
    consolidation."""
    return con.execute("SELECT l.source, l.source_id, r.row_number, l.structure_id FROM "
                       "core.links l JOIN core.records r USING (source, source_id)").fetchall()


def structures_with_several_sirets(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The records (structure_id, source, source_id, siret, siret_signature) of the structures
    whose records carry more than one usable SIRET (placeholders …999NN left out)."""
    if not table_exists(con, "core", "links"):
        return []
    return fetch_frame(con, """
        WITH r AS (
            SELECT l.structure_id, r.source, r.source_id, r.siret, r.siret_signature
            FROM core.links l JOIN core.records r USING (source, source_id))
        SELECT * FROM r WHERE structure_id IN (
            SELECT structure_id FROM r
            WHERE siret IS NOT NULL AND NOT regexp_matches(siret, '999[0-9]{2}$')
            GROUP BY structure_id HAVING count(DISTINCT siret) > 1)
        ORDER BY structure_id, source, source_id""").to_dict("records")


def same_judgements(con: duckdb.DuckDBPyConnection) -> list[frozenset[str]]:
    """Pairs of record keys whose newest judgement is "same"."""
    if not table_exists(con, "core", "judgements"):
        return []
    rows = con.execute("""
        SELECT left_source, left_source_id, right_source, right_source_id, decision
        FROM core.judgements""").fetchall()
    newest: dict[frozenset[str], str] = {}
    for ls, li, rs, ri, decision in rows:  # the file's order: the newest line wins
        newest[frozenset((record_key(ls, li), record_key(rs, ri)))] = decision
    return [pair for pair, decision in newest.items() if decision == "same"]
