"""Every version of every structure (`core.structures_history`) and the changes between them
(`marts.siae_changes`), kept by each consolidation that writes `core.structures`.

A version is valid from the consolidation that produced it (`valid_from`) until the one that
changed or removed the structure (`valid_to`, NULL while current). Unchanged structures keep
their open version, so the history grows with the changes, not with the runs.
"""

from __future__ import annotations

import datetime as dt

import duckdb

_BOOKKEEPING = {"row_hash": "VARCHAR", "valid_from": "TIMESTAMP", "valid_to": "TIMESTAMP",
                "run_id": "VARCHAR", "closed_by": "VARCHAR"}


# Bookkeeping of the merge, not data: a record re-keyed by its source changes the key shown.
_NOT_COMPARED = {"identity_key"}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    return dict(con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = ? ORDER BY ordinal_position", [schema, name]).fetchall())


def _ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    current = _columns(con, "core.structures")
    history = _columns(con, "core.structures_history")
    if not history:
        extra = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in _BOOKKEEPING.items())
        con.execute(f"CREATE TABLE core.structures_history AS SELECT *, {extra} "
                    "FROM core.structures WITH NO DATA")
        return
    # A column added to core.structures later: older versions have it NULL.
    for column, kind in current.items():
        if column not in history:
            con.execute(f'ALTER TABLE core.structures_history ADD COLUMN "{column}" {kind}')


def record_history(con: duckdb.DuckDBPyConnection, now: dt.datetime, run_id: str) -> dict:
    """Close the versions that changed or disappeared, open the new ones, and recreate
    marts.siae_changes. Returns the counts of versions closed and opened."""
    _ensure_table(con)
    columns = [c for c in _columns(con, "core.structures") if c not in _NOT_COMPARED]
    fields = ", ".join(f'"{c}" := "{c}"' for c in columns)
    # the hashes only (the rows are read again for the versions opened): a copy of every
    # row held through the consolidation's transaction was 300 MB at 1M
    con.execute("CREATE OR REPLACE TEMP TABLE _current AS SELECT structure_id, "
                f"md5(CAST(struct_pack({fields}) AS VARCHAR)) AS row_hash FROM core.structures")
    closed = con.execute(
        "UPDATE core.structures_history h SET valid_to = ?, closed_by = ? "
        "WHERE valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM _current c "
        "WHERE c.structure_id = h.structure_id AND c.row_hash = h.row_hash)",
        [now, run_id]).fetchall()[0][0]
    opened = con.execute(
        "INSERT INTO core.structures_history BY NAME "
        "SELECT s.*, c.row_hash, CAST(? AS TIMESTAMP) AS valid_from, ? AS run_id "
        "FROM _current c JOIN core.structures s USING (structure_id) "  # one row per ID
        "WHERE NOT EXISTS (SELECT 1 FROM core.structures_history h WHERE h.valid_to IS NULL "
        "AND h.structure_id = c.structure_id AND h.row_hash = c.row_hash)",
        [now, run_id]).fetchall()[0][0]
    con.execute("DROP TABLE _current")
    con.execute(changes_view_sql(columns))
    return {"closed": closed, "opened": opened}


def changes_view_sql(columns: list[str]) -> str:
    """marts.siae_changes: one row per structure added, changed (with the fields that
    changed) or removed, at the consolidation that did it."""
    compared = [c for c in columns if c != "structure_id" and c not in _NOT_COMPARED]
    diffs = ", ".join(f"CASE WHEN c.\"{col}\" IS DISTINCT FROM p.\"{col}\" THEN '{col}' END"
                      for col in compared)
    return f"""
CREATE OR REPLACE VIEW marts.siae_changes AS
SELECT c.structure_id, c.valid_from AS modifie_le, c.run_id,
       CASE WHEN p.structure_id IS NULL THEN 'added' ELSE 'changed' END AS changement,
       CASE WHEN p.structure_id IS NULL THEN CAST([] AS VARCHAR[])
            ELSE list_filter([{diffs}], lambda x: x IS NOT NULL) END AS champs
FROM core.structures_history c
LEFT JOIN core.structures_history p
  ON p.structure_id = c.structure_id AND p.valid_to = c.valid_from
-- a new version equal field for field (a column added or reordered by an upgrade) is no change
WHERE p.structure_id IS NULL OR len(champs) > 0
UNION ALL
SELECT h.structure_id, h.valid_to, h.closed_by, 'removed', CAST([] AS VARCHAR[])
FROM core.structures_history h
WHERE h.valid_to IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM core.structures_history n
    WHERE n.structure_id = h.structure_id AND n.valid_from = h.valid_to)
"""


def changes_since(con: duckdb.DuckDBPyConnection, since: dt.datetime,
                  structure_id: str | None = None) -> list[tuple]:
    """(modifie_le, changement, structure_id, nom, champs) from marts.siae_changes since a date,
    oldest first; the name is the structure's current one, or for a removed structure the
    name its last version had."""
    sql = ("SELECT c.modifie_le, c.changement, c.structure_id, coalesce(s.nom, h.nom), c.champs "
           "FROM marts.siae_changes c LEFT JOIN core.structures s USING (structure_id) "
           "LEFT JOIN (SELECT structure_id, arg_max(nom, valid_from) AS nom "
           "FROM core.structures_history GROUP BY ALL) h USING (structure_id) "
           "WHERE c.modifie_le >= ?")
    params: list = [since]
    if structure_id:
        sql += " AND c.structure_id = ?"
        params.append(structure_id)
    return con.execute(sql + " ORDER BY c.modifie_le, c.structure_id", params).fetchall()
