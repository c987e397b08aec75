"""Matching with ops.match_cache scores only the communes whose records changed, and gives
the pairs of scoring every record, whatever changed."""

import json

import numpy as np
import pytest

from flows.consolidation import features_json
from flows.scoring import score_with_cache
from tests.unit.test_partitions import COMMUNES, records
from transforms.match_cache import commune_keys
from transforms.matching import features_text, score_pairs
from transforms.settings import MatchingSettings, RuntimeSettings
from warehouse import match_cache
from warehouse.db import connect

RUNTIME = RuntimeSettings(partitions=3)


def digests(frame) -> list[str]:
    """A stand-in for DuckDB's row hash: any value that changes with the row."""
    return [json.dumps(row, sort_keys=True, default=str) for row in frame.to_dict("records")]


def run(con, frame, settings=None):
    """One consolidation's matching: read the cache, score, write the cache."""
    settings = settings or MatchingSettings()
    matching = score_with_cache(frame, digests(frame), match_cache.load(con), settings,
                                RUNTIME, direct=True)
    match_cache.save(con, matching.entries, matching.communes)
    assert matching.scored == score_pairs(frame.to_dict("records"), settings)
    return matching


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "siae.duckdb") as c:
        yield c


def test_a_first_run_scores_every_commune_and_a_second_none(con):
    frame = records()
    first = run(con, frame)
    keys = set(commune_keys(frame)) - {None}  # INSEE codes, and postcodes where no code
    assert len(keys) > len(set(COMMUNES)) and first.rescored == len(keys)
    assert len(first.scored) >= len(COMMUNES) * 2
    second = run(con, frame)
    assert (second.rescored, second.records_scored, second.partitions) == (0, 0, 0)
    assert second.scored == first.scored


def test_an_edited_record_rescores_its_commune_only(con):
    frame = records()
    run(con, frame)
    frame.at[3, "nom"] = "Tout autre chose"
    edited = run(con, frame)
    key = commune_keys(frame)[3]
    assert edited.rescored == 1
    assert edited.records_scored == commune_keys(frame).count(key) > 1


def test_in_a_commune_scored_again_only_the_edited_records_pairs_are_scored(con):
    frame = records()
    first = run(con, frame)
    key = commune_keys(frame)[3]
    everyone = {i for i, c in enumerate(commune_keys(frame)) if c == key}
    frame.at[3, "nom"] = "Atelier de la gare"
    in_commune = [p for p in score_pairs(frame.to_dict("records"), MatchingSettings(),
                                         keep_distinct=True) if p[0] in everyone]
    edited = run(con, frame)  # asserts the full pairs
    touching = [p for p in in_commune if 3 in p[:2]]  # the edited record's candidate pairs
    assert first.pairs_scored >= len(in_commune) > len(touching)
    assert edited.rescored == 1 and edited.pairs_scored == len(touching) > 0


def test_a_cache_from_before_pair_digests_scores_its_communes_whole(con):
    frame = records()
    run(con, frame)
    old = {c: (d, [pair[:5] for pair in pairs if pair[3] != "distinct"])
           for c, (d, pairs) in match_cache.load(con).items()}
    frame.at[3, "nom"] = "Tout autre chose"
    matching = score_with_cache(frame, digests(frame), old, MatchingSettings(), RUNTIME,
                                direct=True)
    assert matching.scored == score_pairs(frame.to_dict("records"), MatchingSettings())


@pytest.mark.parametrize("change", ["removed", "added elsewhere", "moved", "re-keyed"])
def test_records_removed_added_moved_or_rekeyed_give_the_full_pairs(con, change):
    frame = records()
    run(con, frame)
    if change == "removed":
        frame = frame.drop(index=[0, 1]).reset_index(drop=True)
    elif change == "added elsewhere":
        frame.loc[len(frame)] = {**frame.loc[0].to_dict(), "source_id": "new",
                                 "code_insee": "75056"}
    elif change == "moved":
        frame.at[5, "code_insee"] = "69123"
    else:
        frame.at[1, "source_id"] = "other-key"
    run(con, frame)  # asserts the equality


def test_a_commune_left_empty_leaves_the_cache(con):
    frame = records()
    run(con, frame)
    frame = frame[frame["code_insee"] != "43157"].reset_index(drop=True)
    run(con, frame)
    assert "43157" not in match_cache.load(con)


def test_new_thresholds_rescore_everything(con):
    frame = records()
    run(con, frame)
    again = run(con, frame, MatchingSettings(merge_threshold=0.9, review_threshold=0.5))
    assert again.rescored == len(set(commune_keys(frame)) - {None})


def test_candidate_features_are_sorted_json_with_why_a_pair_was_held_back():
    # numpy floats (a distance computed with numpy) are written as plain numbers, NaN as null
    text = features_text({"name": 0.5, "address": np.float64(0.25), "contact": None,
                          "distance_km": float("nan"), "kinds": 0.123456})
    assert list(json.loads(text)) == ["address", "contact", "distance_km", "kinds", "name"]
    assert json.loads(text) == {"address": 0.25, "contact": None, "distance_km": None,
                                "kinds": 0.1235, "name": 0.5}
    written = features_json(text, "sirets_differents")
    assert list(json.loads(written)) == ["address", "blocked", "contact", "distance_km",
                                         "kinds", "name"]
    assert json.loads(written)["blocked"] == "sirets_differents"
    assert features_json(text) == text  # a pair not held back is written as scored


def test_the_cache_gives_back_the_scores_it_was_given(con):
    # a score's every digit: a pair taken from the cache must classify as it did
    pairs = [("record:a:1", "record:a:2", 0.1 + 0.2, "review", {"name": 1 / 3}, "d1")]
    match_cache.save(con, {"35238": ("digest", pairs)}, {"35238"})
    assert match_cache.load(con) == {"35238": ("digest", pairs)}


def test_a_cache_written_before_orjson_is_still_read(con):
    # json.dumps wrote NaN, which orjson refuses: the entry is read the former way
    con.execute("INSERT INTO ops.match_cache VALUES ('35238', 'digest', "
                "'[[\"record:a:1\",\"record:a:2\",0.5,\"review\",{\"distance_km\":NaN},\"d1\"]]')")
    (digest, [pair]), = match_cache.load(con).values()
    assert digest == "digest" and pair[:4] == ("record:a:1", "record:a:2", 0.5, "review")
    assert np.isnan(pair[4]["distance_km"])
