"""raw.fetches, raw.pruned, staging.<source>, ops.source_state, ops.rejects/warnings."""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from tests.helpers import record
from transforms.fields import RECORD
from transforms.staging import ISSUE_COLUMNS
from warehouse import raw, staging

NOW = dt.datetime(2026, 11, 2, 6, 30)


def state(source="reseau", sha="abc", run="r1"):
    return staging.SourceState(source, sha, "fp", NOW, run, 3, 2, 1, 0, ["Référent"])


def frame(rows):
    return pd.DataFrame(rows, columns=list(RECORD), dtype=object)


def test_fetches_are_recorded_with_their_outcome(con):
    raw.record_failed_fetch(con, "r1", "reseau", "/x/*.csv", NOW, "no file matches")
    raw.record_fetch(con, "r2", "reseau", NOW, [raw.LandedFetch("/x/a.csv", "s1", 10, "/raw/s1")],
                     unchanged=False)
    rows = con.execute("SELECT run_id, status, sha256, error FROM raw.fetches ORDER BY run_id"
                       ).fetchall()
    assert rows == [("r1", "failed", None, "no file matches"), ("r2", "ok", "s1", None)]
    assert raw.successful_fetches(con, "reseau") == [("s1", "/raw/s1", NOW, "r2")]
    raw.record_pruned(con, "reseau", "s1", "/raw/s1", NOW, "r3")
    assert con.execute("SELECT count(*) FROM raw.pruned").fetchone()[0] == 1


def test_staging_replaces_the_relation_and_its_state_together(con):
    staging.replace_staging(con, state(), frame([record(**{"nom": "A", "types": ["ACI"]})]))
    assert staging.staged_sources(con) == {"reseau"}
    assert staging.source_state(con, "reseau") == state()
    staging.replace_staging(con, state(sha="def", run="r2"),
                            frame([record(source_id=str(i), nom="B", types=["EI"])
                                   for i in range(3)]))
    assert con.execute("SELECT count(*) FROM staging.reseau").fetchone()[0] == 3
    assert staging.source_state(con, "reseau").sha256 == "def"


def test_a_failing_staging_keeps_the_previous_one(con):
    staging.replace_staging(con, state(), frame([record(nom="A", types=["ACI"])]))
    bad = frame([record(nom="B", types=["EI"], date_maj="not a date")])
    with pytest.raises(duckdb.ConversionException, match="not a date"):
        staging.replace_staging(con, state(sha="new"), bad)
    assert con.execute("SELECT nom FROM staging.reseau").fetchall() == [("A",)]
    assert staging.source_state(con, "reseau").sha256 == "abc"


def test_staged_records_tolerate_a_staging_from_an_older_schema(con):
    staging.replace_staging(con, state("a"), frame([record("a", "1", nom="A", types=["ACI"])]))
    # a source staged before siret_signature existed
    con.execute("CREATE TABLE staging.b AS SELECT source, source_id, nom, types "
                "FROM staging.a WITH NO DATA")
    con.execute("INSERT INTO staging.b VALUES ('b', '2', 'B', ['EI'])")
    out = staging.staged_records(con, ["a", "b"])
    assert list(out.columns) == list(RECORD)
    assert list(out["nom"]) == ["A", "B"] and out["siret_signature"].isna().all()


def test_rejects_and_warnings_keep_the_raw_row_and_the_run(con):
    rejects = pd.DataFrame([["reseau", 4, "siret", "123", "siret_invalide", "13 digits",
                             '{"N° SIRET": "123"}']], columns=ISSUE_COLUMNS, dtype=object)
    staging.record_issues(con, rejects, rejects.iloc[0:0], "r1", "sha")
    row = con.execute("SELECT run_id, sha256, row_number, reason, raw ->> 'N° SIRET' "
                      "FROM ops.rejects").fetchone()
    assert row == ("r1", "sha", 4, "siret_invalide", "123")
