"""core.* written in one transaction; the geocoding cache; ops.*; marts.publications."""

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from tests.helpers import record, structure
from transforms.fields import RECORD
from transforms.geocoding import Query, Result
from transforms.merge import LINK_COLUMNS
from warehouse import core, geocodes, ops, publications, staging
from warehouse.db import CANDIDATE_TYPES, JUDGEMENT_TYPES

NOW = dt.datetime(2026, 11, 2, 7, 0)


def tables(structures, **kw):
    records = pd.DataFrame([record("a", str(i), nom=s["nom"], types=["ACI"])
                            for i, s in enumerate(structures)], columns=list(RECORD),
                           dtype=object)
    links = pd.DataFrame([[s["structure_id"], "a", str(i), "source_record", None]
                          for i, s in enumerate(structures)], columns=LINK_COLUMNS, dtype=object)
    base = dict(records=records, links=links,
                candidates=pd.DataFrame(columns=list(CANDIDATE_TYPES)),
                judgements=pd.DataFrame(columns=list(JUDGEMENT_TYPES)), redirects={},
                structures=pd.DataFrame(structures, dtype=object),
                new_ids={f"record:a:{i}": s["structure_id"] for i, s in enumerate(structures)},
                seen_keys=[f"record:a:{i}" for i in range(len(structures))], successions=[],
                disagreements=[])
    base.update(kw)
    return core.CoreTables(**base)


def test_a_consolidation_is_written_whole_and_read_back(con):
    history = core.write_core(con, tables([structure(1), structure(2)], redirects={"siae-old":
                                                                                   "siae-0001"}),
                              "r1", NOW)
    assert history == {"closed": 0, "opened": 2}
    assert core.structure_count(con) == 2
    known = core.identities(con)
    assert known.known == {"record:a:0": "siae-0001", "record:a:1": "siae-0002"}
    assert known.previous["structure_id"].tolist() == ["siae-0001", "siae-0002"]
    # with the sources the merge reads: only the records their stagings no longer hold
    still = pd.DataFrame([record("a", "1", nom="Atelier", types=["ACI"])], columns=list(RECORD),
                         dtype=object)
    staging.replace_staging(con, staging.SourceState("a", "sha", "fp", NOW, "r2", 1, 1, 0, 0,
                                                     None), still)
    assert core.identities(con, ["a"]).previous["source_id"].tolist() == ["0"]
    assert publications.redirects(con) == {"siae-old": "siae-0001"}
    assert [r["structure_id"] for r in publications.published_rows(con)] == \
        ["siae-0001", "siae-0002"]


def test_a_failing_write_leaves_the_previous_consolidation(con):
    core.write_core(con, tables([structure(1)]), "r1", NOW)
    broken = tables([structure(2)], disagreements=[["siae-0002", "a", "x"]])  # too few columns
    with pytest.raises(Exception):  # noqa: B017 (any failure must roll back)
        core.write_core(con, broken, "r2", NOW)
    assert [r["structure_id"] for r in publications.published_rows(con)] == ["siae-0001"]
    assert core.identities(con).known == {"record:a:0": "siae-0001"}


def test_structures_located_meanwhile_are_written_in_the_same_transaction(con):
    core.write_core(con, tables([structure(1)]), "r1", NOW)
    located = tables([structure(2)], new_ids={"record:a:9": "siae-0002"})
    pending = dataclasses.replace(located, structures=None, disagreements=None)

    def fails():
        raise RuntimeError("the locating process died")

    with pytest.raises(RuntimeError, match="locating process died"):
        core.write_core(con, pending, "r2", NOW, located=fails)
    # nothing of the second consolidation stays: not even its records and IDs
    assert [r["structure_id"] for r in publications.published_rows(con)] == ["siae-0001"]
    assert core.identities(con).known == {"record:a:0": "siae-0001"}
    # write_core empties the tables it writes: the retry passes them again
    pending = dataclasses.replace(located, structures=None, disagreements=None)
    core.write_core(con, pending, "r2", NOW,
                    located=lambda: (located.structures, located.disagreements))
    assert [r["structure_id"] for r in publications.published_rows(con)] == ["siae-0002"]
    assert core.identities(con).known["record:a:9"] == "siae-0002"


def test_what_is_written_is_not_held_while_the_structures_are_located(con):
    # At 1M the links and the IDs' dicts were 200 MB held through the structures' write,
    # the flow's largest moment: write_core lets each go once written.
    import weakref

    import pyarrow as pa

    structures = tables([structure(1)]).structures
    links = pa.Table.from_pandas(tables([structure(1)]).links, preserve_index=False)
    gone = weakref.ref(links)
    pending = dataclasses.replace(tables([structure(1)], links=links), structures=None,
                                  disagreements=None)
    del links
    seen = []

    def located():
        seen.append((gone() is None, pending.new_ids, pending.seen_keys))
        return structures, []

    core.write_core(con, pending, "r1", NOW, located=located)
    assert seen == [(True, None, None)]
    assert con.execute("SELECT count(*) FROM core.links").fetchall() == [(1,)]


def _stage(con, source, run_id, rows):
    frame = pd.DataFrame([record(source, str(i), nom=f"Atelier {i}", types=["ACI"])
                          for i in range(rows)], columns=list(RECORD), dtype=object)
    staging.replace_staging(con, staging.SourceState(source, "sha", "fp", NOW, run_id, rows,
                                                     rows, 0, 0, None), frame)


def test_core_records_are_copied_from_the_stagings_the_merge_read(con):
    # The flow does not hold a national run's records through geocode and locate: DuckDB
    # copies them from the stagings, as staged_records read them.
    _stage(con, "b", "r1", 2)
    _stage(con, "a", "r1", 3)
    read = staging.staged_records(con, ["a", "b"])
    merged = staging.StagedRecords(("a", "b"), staging.staged_versions(con, ["a", "b"]),
                                   len(read))
    core.write_core(con, tables([structure(1)], records=merged), "r2", NOW)
    written = con.execute("SELECT source, source_id, nom, types FROM core.records "
                          "ORDER BY rowid").fetchall()
    assert written == [tuple(r) for r in read[["source", "source_id", "nom", "types"]]
                       .itertuples(index=False)]
    assert [w[:2] for w in written] == [("a", "0"), ("a", "1"), ("a", "2"), ("b", "0"),
                                        ("b", "1")]


def test_a_source_staged_again_during_the_merge_writes_nothing(con):
    # Another process ingested "b" between the merge's read and its write: core.records
    # would not be the records merged. Nothing is written; the next run consolidates it.
    _stage(con, "a", "r1", 2)
    _stage(con, "b", "r1", 2)
    core.write_core(con, tables([structure(1)]), "r1", NOW)
    merged = staging.StagedRecords(("a", "b"), staging.staged_versions(con, ["a", "b"]), 4)
    _stage(con, "b", "r2", 5)
    with pytest.raises(staging.StagingChanged, match="the staging of b changed"):
        core.write_core(con, tables([structure(2)], records=merged), "r3", NOW)
    assert [r["structure_id"] for r in publications.published_rows(con)] == ["siae-0001"]
    assert con.execute("SELECT count(*) FROM core.records").fetchall() == [(1,)]


def test_the_geocoding_cache_stores_prunes_and_counts_what_is_due(con):
    q = {"k1": Query("k1", "1 rue A", "07200", "Aubenas", "07019"),
         "k2": Query("k2", "2 rue B", "07200", "Aubenas", "07019")}
    geocodes.store(con, q, {"k1": Result("k1", "ok", 44.6, 4.39, 0.95, "housenumber")}, NOW)
    got = geocodes.cached(con, ["k1", "k2", "k3"])
    assert got["k1"][0].score == 0.95 and got["k2"][0].status == "error" and "k3" not in got
    assert geocodes.answers_due(con, NOW + dt.timedelta(days=1), 0.75) == 1  # k2 only
    assert geocodes.prune(con, ["k1"]) == 1
    assert set(geocodes.cached(con, ["k1", "k2"])) == {"k1"}


def test_steps_consolidations_and_alerts_make_the_health(con):
    ops.record_steps(con, [
        ("r1", "stage", "a", NOW, NOW, 1.0, "ok", 3, 3, 0, None, None),
        ("r2", "fetch", "a", NOW + dt.timedelta(hours=1), NOW + dt.timedelta(hours=1), 0.1,
         "failed", None, None, None, None, "no file matches")])
    health = ops.source_health(con)["a"]
    assert health["last_success"] == NOW and health["failure_message"] == "no file matches"
    ops.record_consolidation(con, "r1", NOW, "hash")
    assert ops.last_consolidation(con) == ("hash", "r1")
    ops.record_alerts(con, [(NOW, "r2", "a", "failed", "open", "no file", True)])
    assert ops.open_alerts(con) == {("a", "failed"): NOW}
    ops.record_alerts(con, [(NOW + dt.timedelta(hours=2), "r3", "a", "failed", "recovered",
                             None, True)])
    assert ops.open_alerts(con) == {}
    assert ops.pipeline_state(con)["consolidation"]["run_id"] == "r1"


def test_publications_are_listed_newest_first(con):
    for i in range(3):
        publications.record_publication(con, f"rel{i}", NOW + dt.timedelta(days=i), 10, 9,
                                        {"added": i, "removed": 0, "moved": 0, "changed": 0},
                                        {}, None)
    assert [p[0] for p in publications.publications(con)] == ["rel2", "rel1", "rel0"]


def _pair(left: str, right: str, **kw) -> dict:
    return {"left_source": "a", "left_source_id": left, "right_source": "a",
            "right_source_id": right, **kw}


def test_pairs_awaiting_review_show_both_sides_until_judged(con):
    candidates = pd.DataFrame([
        _pair("0", "1", score=0.7, band="review", features='{"name": 1.0}'),
        _pair("1", "2", score=0.8, band="review", features='{"name": 0.9}'),
        _pair("0", "2", score=0.95, band="merge", features='{"name": 1.0}')],
        columns=list(CANDIDATE_TYPES), dtype=object)
    # the judgement names the pair the other way round: it is the same pair
    judgements = pd.DataFrame([_pair("2", "1", decision="different", decided_at=NOW,
                                     author="ana", note=None)],
                              columns=list(JUDGEMENT_TYPES), dtype=object)
    core.write_core(con, tables([structure(1, nom="Régie A"), structure(2, nom="Régie B"),
                                 structure(3, nom="Régie C")],
                                candidates=candidates, judgements=judgements), "r1", NOW)
    rows = con.execute("SELECT score, structure_id_a, nom_a, structure_id_b, nom_b "
                       "FROM marts.doublons_a_verifier").fetchall()
    assert rows == [(0.7, "siae-0001", "Régie A", "siae-0002", "Régie B")]


def test_an_older_warehouse_keeps_its_publications_log(tmp_path):
    """Before 2026-11 marts.publications was a table; opening the file moves its rows to
    ops.publications, read in French through the mart."""
    import duckdb

    from warehouse.db import connect

    path = tmp_path / "siae.duckdb"
    old = duckdb.connect(str(path))
    old.execute("CREATE SCHEMA marts; CREATE TABLE marts.publications (release_id VARCHAR "
                "PRIMARY KEY, published_at TIMESTAMP NOT NULL, structures INTEGER, features "
                "INTEGER, added INTEGER, removed INTEGER, moved INTEGER, changed INTEGER, files "
                "JSON, previous VARCHAR)")
    old.execute("INSERT INTO marts.publications VALUES ('rel0', ?, 10, 9, 10, 0, 0, 0, '{}', "
                "NULL)", [NOW])
    old.close()
    with connect(path) as c:
        assert [p[0] for p in publications.publications(c)] == ["rel0"]
        core.write_core(c, tables([structure(1)]), "r1", NOW)  # recreates the marts
        assert c.execute("SELECT release_id, publiee_le, points, ajoutees FROM "
                         "marts.publications").fetchall() == [("rel0", NOW, 9, 10)]


def test_geocoding_disagreements_are_kept_for_the_last_consolidations_only(con):
    from warehouse.core import keep_recent_disagreements
    for day in range(1, 13):  # twelve daily consolidations flag the same two points
        for sid in ("siae-1", "siae-2"):
            con.execute("INSERT INTO ops.geo_disagreements (run_id, structure_id, reason) "
                        "VALUES (?, ?, 'far')", [f"202611{day:02d}T060000-abcdef", sid])
    assert keep_recent_disagreements(con, runs=10) == 4
    runs = [r for (r,) in con.execute("SELECT DISTINCT run_id FROM ops.geo_disagreements "
                                      "ORDER BY 1").fetchall()]
    assert runs == [f"202611{day:02d}T060000-abcdef" for day in range(3, 13)]


def test_a_removed_structure_is_listed_under_its_last_name(con):
    from warehouse.history import changes_since

    core.write_core(con, tables([structure(1, nom="Ancien nom"), structure(2)]), "r1", NOW)
    later = NOW + dt.timedelta(days=1)
    core.write_core(con, tables([structure(1, nom="Nouveau nom"), structure(2)], new_ids={}),
                    "r2", later)
    core.write_core(con, tables([structure(2)], new_ids={}), "r3", later + dt.timedelta(days=1))
    rows = changes_since(con, NOW, "siae-0001")
    # the name it had last, not any of its versions' names
    assert [(change, name) for _, change, _, name, _ in rows] == [
        ("added", "Nouveau nom"), ("changed", "Nouveau nom"), ("removed", "Nouveau nom")]


def test_a_consolidation_fits_duckdb_memory_to_the_keys_it_writes(con, monkeypatch):
    # A first run's instance is opened on an empty warehouse (the floor); the keys' index it
    # is about to write must fit in DuckDB's memory (5 million keys failed under 256 MB).
    from warehouse import db
    monkeypatch.setattr(db, "MEMORY_PER_ROW", 1 << 30)  # a GiB per row: counts show
    before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    core.write_core(con, tables([structure(1), structure(2)]), "r1", NOW)
    after = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    rows = con.execute("SELECT sum(estimated_size) FROM duckdb_tables()").fetchall()[0][0]
    assert before != after and after.endswith(" GiB")
    # the rows held then (fewer than now) and the two keys and two records to come
    assert 4 <= float(after.split()[0]) <= rows + 4
