"""The geocoding runs while the core tables are written: the records are written before the
geocoder has answered, and a failure of either still leaves both steps reported."""

import threading

from flows import consolidation
from flows.sync import sync_direct
from tests.helpers import query
from warehouse import core


def _steps(summary) -> dict[str, str]:
    return {s.step: s.status for s in summary.steps if not s.source}


def test_the_records_are_written_while_the_geocoder_works(demo, tmp_path, monkeypatch):
    written = threading.Event()
    real_copy, real_geocode = core.copy_records, consolidation.geocode_structures

    def copy_records(con, table, *args, **kwargs):
        real_copy(con, table, *args, **kwargs)
        if table == "core.records":
            written.set()

    def geocode_structures(*args, **kwargs):
        # answers only once the records are written: written one after the other, the
        # records would wait for these answers, and this for them
        assert written.wait(60), "the records were not written while geocoding"
        return real_geocode(*args, **kwargs)

    monkeypatch.setattr(core, "copy_records", copy_records)
    monkeypatch.setattr(consolidation, "geocode_structures", geocode_structures)
    summary = sync_direct(str(demo / "sources.toml"), home=str(tmp_path / "wh"))
    assert _steps(summary)["geocode"] == "ok" and _steps(summary)["locate"] == "ok"
    assert summary.published
    located = query(tmp_path / "wh", "SELECT count(*) FILTER (WHERE geo_source = 'ban') "
                                     "FROM core.structures")[0][0]
    assert located > 0  # the geocoder's answers were used


def test_a_failed_geocoding_locates_without_it_and_says_so(demo, tmp_path, monkeypatch):
    def geocode_structures(*args, **kwargs):
        raise RuntimeError("the geocoding broke")

    monkeypatch.setattr(consolidation, "geocode_structures", geocode_structures)
    summary = sync_direct(str(demo / "sources.toml"), home=str(tmp_path / "wh"))
    steps = {s.step: s for s in summary.steps if not s.source}
    assert steps["geocode"].status == "failed"
    assert "the geocoding broke" in steps["geocode"].message
    assert steps["locate"].status == "ok" and summary.published
    assert query(tmp_path / "wh", "SELECT count(*) FILTER (WHERE geo_source = 'ban') "
                                  "FROM core.structures")[0][0] == 0


def test_a_failed_writing_still_reports_the_geocoding_it_waited_for(demo, tmp_path,
                                                                     monkeypatch):
    real_replace = core.replace_table

    def replace_table(con, table, *args, **kwargs):
        if table == "core.links":
            raise RuntimeError("the disk is full")
        real_replace(con, table, *args, **kwargs)

    monkeypatch.setattr(core, "replace_table", replace_table)
    summary = sync_direct(str(demo / "sources.toml"), home=str(tmp_path / "wh"))
    steps = {s.step: s for s in summary.steps if not s.source}
    assert steps["geocode"].status == "ok"
    assert steps["locate"].status == "failed" and "the disk is full" in steps["locate"].message
    assert not summary.published
    recorded = query(tmp_path / "wh", "SELECT step, status FROM ops.runs WHERE run_id = ? "
                                      "AND step IN ('geocode', 'locate') ORDER BY step",
                     [summary.run_id])
    assert recorded == [("geocode", "ok"), ("locate", "failed")]
