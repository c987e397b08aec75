"""siae review records decisions in the judgements file; the matcher meets its targets."""

import csv
from pathlib import Path

import pandas as pd

from flows.evaluation import read_labelled_pairs
from flows.judgements import load_judgements
from flows.review import pending_pairs, review
from transforms.matching import evaluate
from transforms.merge import record_key
from transforms.spec import load_spec
from transforms.staging import RECORD_COLUMNS
from warehouse.db import CANDIDATE_TYPES, RECORD_TYPES, connect, replace_table
from warehouse.paths import WarehousePaths

ROOT = Path(__file__).resolve().parents[2]


def warehouse_with_candidates(home: Path) -> None:
    def rec(source, sid, nom):
        r = dict.fromkeys(RECORD_COLUMNS)
        r.update(source=source, source_id=sid, nom=nom, types=["ACI"], commune="Vienne")
        return r

    records = pd.DataFrame([rec("a", "1", "LES COOPAINS"), rec("b", "2", "Les Coopains"),
                            rec("a", "3", "Tremplin"), rec("b", "4", "Tremplin 38")],
                           dtype=object)
    candidates = pd.DataFrame([["a", "1", "b", "2", 0.77, "review", "{}"],
                               ["a", "3", "b", "4", 0.70, "review", "{}"]],
                              columns=list(CANDIDATE_TYPES), dtype=object)
    with connect(WarehousePaths(home).ensure().database) as con:
        replace_table(con, "core.records", records, RECORD_TYPES)
        replace_table(con, "core.match_candidates", candidates, CANDIDATE_TYPES)


def test_review_asks_and_appends_decisions(tmp_path):
    warehouse_with_candidates(tmp_path)
    judgements = tmp_path / "judgements.csv"
    answers = iter(["x", "s", "q"])  # an unknown answer is asked again
    shown = []
    counts = review(tmp_path, judgements, ask=lambda _: next(answers), show=shown.append)
    assert counts == {"same": 1, "different": 0, "unsure": 0, "skipped": 0}
    assert "LES COOPAINS" in shown[1] and "Les Coopains" in shown[1]
    assert load_judgements(judgements) == {
        frozenset({record_key("a", "1"), record_key("b", "2")}): "same"}
    # judged pairs are not asked again
    assert [p["left_source_id"] for p in pending_pairs(tmp_path, judgements)] == ["3"]
    rows = list(csv.DictReader(judgements.open()))
    assert rows[0]["decision"] == "same" and rows[0]["decided_at"]


def test_matcher_precision_and_recall_on_the_labelled_pairs():
    spec = load_spec(ROOT / "samples" / "sources.toml")
    pairs = read_labelled_pairs(ROOT / "samples" / "matching_pairs.csv")
    result = evaluate(pairs, spec.matching)
    print(f"precision {result.precision:.3f} recall {result.recall:.3f} on {result.pairs}")
    assert result.pairs >= 300
    assert result.precision >= 0.99 and result.recall >= 0.95


def test_the_threshold_choice_generalises_to_held_out_pairs():
    from transforms.matching import cross_validate

    cv = cross_validate(read_labelled_pairs(ROOT / "samples" / "matching_pairs.csv"))
    print(f"held out: precision {cv.precision:.3f} recall {cv.recall:.3f} "
          f"thresholds {cv.merge_thresholds}")
    assert cv.precision >= 0.98 and cv.recall >= 0.95
