"""Sources staged side by side by forked processes are staged exactly as one by one: the same
records, rejects, warnings and step outcomes, a broken source failing alone."""

import pandas as pd

from flows.ingest import ingest_all, prepare
from flows.run_report import Run
from tests.helpers import query
from transforms.spec import load_spec
from warehouse import staging
from warehouse.db import connect
from warehouse.paths import WarehousePaths

ISSUES = ("SELECT source, row_number, field, value, reason, detail FROM {} "
          "ORDER BY ALL")


def _ingest(demo, home, monkeypatch, threshold: int, calls: list):
    from flows import forked

    def counting(jobs, workers):
        calls.append(workers)
        return forked.forked_each(jobs, workers)

    monkeypatch.setattr("flows.ingest.PARALLEL_FROM_BYTES", threshold)
    monkeypatch.setattr("flows.ingest.forked_each", counting)
    spec = load_spec(demo / "sources.toml")
    run = Run(WarehousePaths(home).ensure().home, spec, direct=True)
    ingest_all(run, spec.selected(None), prepare(run), force=False)
    steps = [(s.step, s.source, s.status, s.rows_in, s.rows_out, s.rejected, s.message)
             for s in run.finish().steps if s.step in ("fetch", "stage")]
    with connect(WarehousePaths(home).database) as con:
        names = sorted(staging.staged_sources(con))
        records = staging.staged_records(con, names, digests=True)
    return steps, names, records


def test_sources_staged_by_forked_processes_are_staged_as_one_by_one(demo, tmp_path,
                                                                     monkeypatch):
    # a broken source: its mapped columns are not in the file
    broken = demo / "reseau_iae_aura.csv"
    broken.write_text("a;b;c\n1;2;3\n", encoding="latin-1")
    one_calls, forked_calls = [], []
    one = _ingest(demo, tmp_path / "one", monkeypatch, 1 << 40, one_calls)
    forked = _ingest(demo, tmp_path / "forked", monkeypatch, 0, forked_calls)
    assert one_calls == [] and forked_calls and set(forked_calls) == {2}

    assert forked[0] == one[0]  # every fetch and stage step, with its counts and message
    failed = [s for s in one[0] if s[2] == "failed"]
    assert [(s[0], s[1]) for s in failed] == [("stage", "reseau_iae_aura")]
    assert "reseau_iae_aura" in failed[0][6]
    assert forked[1] == one[1] and len(one[1]) == 5  # the five others are staged
    pd.testing.assert_frame_equal(forked[2], one[2])
    for table in ("ops.rejects", "ops.warnings"):
        assert query(tmp_path / "forked", ISSUES.format(table)) == \
            query(tmp_path / "one", ISSUES.format(table))
    assert query(tmp_path / "one", ISSUES.format("ops.warnings"))  # something to compare


def test_when_the_processes_die_midway_the_rest_is_staged_here(demo, tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    from flows import forked

    def dies_after_one(jobs, workers):
        results = forked.forked_each(jobs, workers)
        yield next(results)
        results.close()
        raise BrokenProcessPool("a process was killed (out of memory)")

    one = _ingest(demo, tmp_path / "one", monkeypatch, 1 << 40, [])
    calls = []
    monkeypatch.setattr("flows.ingest.PARALLEL_FROM_BYTES", 0)
    spec = load_spec(demo / "sources.toml")
    run = Run(WarehousePaths(tmp_path / "broken").ensure().home, spec, direct=True)
    monkeypatch.setattr("flows.ingest.forked_each",
                        lambda jobs, workers: calls.append(workers) or dies_after_one(jobs,
                                                                                      workers))
    ingest_all(run, spec.selected(None), prepare(run), force=False)
    steps = [(s.step, s.source, s.status, s.rows_in, s.rows_out, s.rejected, s.message)
             for s in run.finish().steps if s.step in ("fetch", "stage")]
    assert calls == [2]
    assert steps == one[0]  # every source staged, the same as one by one
    with connect(WarehousePaths(tmp_path / "broken").database) as con:
        names = sorted(staging.staged_sources(con))
        pd.testing.assert_frame_equal(staging.staged_records(con, names, digests=True),
                                      one[2])
