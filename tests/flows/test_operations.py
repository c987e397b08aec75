"""Operating the pipeline: status and freshness, alerts, the consolidation lock, prefect.yaml."""

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows.deployments import prefect_yaml
from flows.outcome import summary_of
from flows.status import problems, source_statuses
from flows.sync import consolidate_publish, sync
from tests.helpers import check_geojson, query, run_summary
from transforms.spec import load_spec
from warehouse.db import connect
from warehouse.lock import consolidation_lock
from warehouse.paths import WarehousePaths

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("prefect_server")


def test_status_reports_failing_and_stale_sources(demo, tmp_path):
    home = tmp_path / "wh"
    text = (demo / "sources.toml").read_text(encoding="utf-8")
    text = text.replace("[defaults.expect]\n", '[defaults.expect]\nmax_age = "8d"\n')
    (demo / "sources.toml").write_text(text, encoding="utf-8")
    run_summary(sync, str(demo / "sources.toml"), home=str(home))
    spec = load_spec(demo / "sources.toml")
    now = dt.datetime.now()
    assert problems(source_statuses(home, spec), now) == []
    (demo / "emplois_aura.json").write_text("<html>oops</html>")
    run_summary(sync, str(demo / "sources.toml"), home=str(home))
    statuses = {s.source: s for s in source_statuses(home, spec)}
    assert statuses["emplois_aura"].failing and statuses["emplois_aura"].rows == 20
    assert "emplois_aura" in statuses["emplois_aura"].failure_message
    later = now + dt.timedelta(days=9)
    found = {(p["source"], p["problem"]) for p in problems(source_statuses(home, spec), later)}
    assert ("emplois_aura", "failed") in found and ("dreets_aura", "stale") in found


def test_a_failing_source_posts_one_alert_and_a_healthy_run_none(demo, tmp_path, httpserver,
                                                                  monkeypatch):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    monkeypatch.setenv("SIAE_ALERT_WEBHOOK", httpserver.url_for("/hook"))
    home = tmp_path / "wh"
    healthy = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    assert not healthy.alerted and len(httpserver.log) == 0
    (demo / "dreets_aura.xlsx").write_bytes(b"not a workbook")
    broken = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    assert broken.alerted and len(httpserver.log) == 1
    body = json.loads(httpserver.log[0][0].get_data())
    assert [p["source"] for p in body["problems"]] == ["dreets_aura"]
    assert "XLSX" in body["problems"][0]["message"] and body["run_id"] == broken.run_id


def test_an_open_problem_is_not_repeated_and_its_end_is_announced(demo, tmp_path, httpserver,
                                                                    monkeypatch):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    monkeypatch.setenv("SIAE_ALERT_WEBHOOK", httpserver.url_for("/hook"))
    home = tmp_path / "wh"
    good = (demo / "dreets_aura.xlsx").read_bytes()
    (demo / "dreets_aura.xlsx").write_bytes(b"not a workbook")
    assert run_summary(sync, str(demo / "sources.toml"), home=str(home)).alerted
    again = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    assert not again.alerted and len(httpserver.log) == 1  # within repeat_after (1d)
    from flows.status import pipeline_status

    assert [(a["source"], a["problem"]) for a in pipeline_status(home)["open_alerts"]] == [
        ("dreets_aura", "failed")]
    (demo / "dreets_aura.xlsx").write_bytes(good)
    fixed = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    assert fixed.alerted and len(httpserver.log) == 2
    body = json.loads(httpserver.log[1][0].get_data())
    assert body["event"] == "siae.recovered" and body["problems"] == []
    assert [(r["source"], r["problem"]) for r in body["recovered"]] == [("dreets_aura", "failed")]
    assert not run_summary(sync, str(demo / "sources.toml"), home=str(home)).alerted
    assert query(home, "SELECT source, problem, state FROM ops.alerts ORDER BY sent_at") == [
        ("dreets_aura", "failed", "open"), ("dreets_aura", "failed", "recovered")]


def test_a_second_consolidation_waits_or_refuses_and_nothing_is_corrupted(demo, tmp_path,
                                                                         monkeypatch):
    home = tmp_path / "wh"
    run_summary(sync, str(demo / "sources.toml"), home=str(home))
    monkeypatch.setenv("SIAE_CONSOLIDATION_WAIT", "1")
    with consolidation_lock(home):
        state = consolidate_publish(str(demo / "sources.toml"), home=str(home),
                                    return_state=True)
    # Prefect sees the failure, with the reason, and what stays published
    assert state.is_failed() and "another consolidation is running" in state.message
    assert "stays published" in state.message
    refused = summary_of(state)
    (step,) = [s for s in refused.steps if s.step == "consolidate"]
    assert step.status == "failed" and "another consolidation is running" in step.message
    # with room to wait, it runs once the first one is done
    monkeypatch.setenv("SIAE_CONSOLIDATION_WAIT", "60")
    holder = threading.Thread(target=lambda: _hold(home, 2.0))
    holder.start()
    time.sleep(0.3)
    waited = run_summary(consolidate_publish, str(demo / "sources.toml"), home=str(home))
    holder.join()
    assert {s.status for s in waited.steps} <= {"ok", "unchanged"}
    with connect(WarehousePaths(home).database) as con:
        assert con.execute("SELECT count(*) FROM core.structures").fetchone()[0] > 0
    assert check_geojson(home / "publish" / "siae.geojson") > 0
    assert query(home, "SELECT count(DISTINCT run_id) FROM ops.runs")[0][0] == 3


def test_an_ingest_run_ends_failed_when_its_source_failed_and_completed_otherwise(demo,
                                                                                 tmp_path):
    from flows.sync import ingest_source

    home = tmp_path / "wh"
    good = ingest_source("emplois_aura", str(demo / "sources.toml"), home=str(home),
                         return_state=True)
    assert good.is_completed() and "source emplois_aura: fetch ok, stage ok" in good.message
    (demo / "emplois_aura.json").unlink()
    bad = ingest_source("emplois_aura", str(demo / "sources.toml"), home=str(home),
                        return_state=True)
    assert bad.is_failed()
    assert bad.message.startswith("source emplois_aura failed, its last good data are kept")
    assert "emplois_aura.json" in bad.message
    assert summary_of(bad).failed_sources == ["emplois_aura"]
    # the whole sync still publishes: Completed, saying which source kept its last good data
    whole = sync(str(demo / "sources.toml"), home=str(home), return_state=True)
    assert whole.is_completed()
    assert "sources that failed and kept their last good data: emplois_aura" in whole.message


def _hold(home: Path, seconds: float) -> None:
    with consolidation_lock(home):
        time.sleep(seconds)


def test_prefect_yaml_agrees_with_sources_toml():
    spec = load_spec(ROOT / "sources.toml")
    assert (ROOT / "prefect.yaml").read_text(encoding="utf-8") == prefect_yaml(spec)


def test_siae_geocode_relocates_and_waits_for_a_running_consolidation(demo, tmp_path,
                                                                      monkeypatch, capsys):
    from flows.cli import main

    home = tmp_path / "wh"
    run_summary(sync, str(demo / "sources.toml"), home=str(home))
    args = ["geocode", "--sources", str(demo / "sources.toml"), "--home", str(home)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 sent in 0 requests" in out and "located by" in out  # all from the cache
    monkeypatch.setenv("SIAE_CONSOLIDATION_WAIT", "0.5")
    with consolidation_lock(home):
        assert main(args) == 1
    assert "another consolidation is running" in capsys.readouterr().err
    assert check_geojson(home / "publish" / "siae.geojson") > 0


def test_status_json_tells_a_probe_the_sources_publication_and_pending_work(demo, tmp_path,
                                                                            capsys,
                                                                            monkeypatch):
    from flows.cli import main

    home = tmp_path / "wh"
    first = run_summary(sync, str(demo / "sources.toml"), home=str(home))
    args = ["status", "--sources", str(demo / "sources.toml"), "--home", str(home), "--json"]
    assert main(args + ["--check"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["source"] for s in doc["sources"]] == list(load_spec(demo / "sources.toml").sources)
    assert doc["problems"] == [] and doc["open_alerts"] == []
    assert doc["consolidation"]["run_id"] == first.run_id
    assert doc["publication"]["features"] == first.features
    assert doc["review_pending"] == len(query(
        home, "SELECT * FROM core.match_candidates WHERE band = 'review'"))
    (demo / "emplois_aura.json").write_text("<html>oops</html>")
    run_summary(sync, str(demo / "sources.toml"), home=str(home))
    assert main(args + ["--check"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [(p["source"], p["problem"]) for p in doc["problems"]] == [("emplois_aura", "failed")]
    # nothing else changed: the consolidation was skipped, the publication is the same
    assert doc["consolidation"]["run_id"] == first.run_id
    assert doc["publication"]["features"] == first.features
    # without --sources: what the warehouse knows, whatever ./sources.toml holds
    monkeypatch.chdir(ROOT)  # the repository's sources.toml names other sources
    assert main(["status", "--home", str(home), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["source"] for s in doc["sources"]] == sorted(load_spec(demo / "sources.toml")
                                                          .sources)
    assert doc["review_pending"] == len(query(home, "SELECT * FROM marts.doublons_a_verifier"))
    assert main(["status", "--home", str(home)]) == 0
    assert "sources as recorded in the warehouse" in capsys.readouterr().out


def test_reports_as_json_and_piped_into_head(demo, tmp_path, capsys):
    from flows.cli import main

    home = tmp_path / "wh"
    assert main(["sync", "--sources", str(demo / "sources.toml"), "--home", str(home),
                 "--no-prefect", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == 0 and report["published"] and report["features"] > 0
    assert {s["step"] for s in report["steps"]} >= {"fetch", "stage", "merge", "publish"}
    assert main(["changes", "--home", str(home), "--json"]) == 0
    changes = json.loads(capsys.readouterr().out)
    assert changes["counts"]["added"] == len(changes["changes"]) == report["structures"]
    assert main(["publish", "--list", "--json", "--home", str(home)]) == 0
    (release,) = json.loads(capsys.readouterr().out)
    assert release["release_id"] == (home / "publish").resolve().name
    # `siae sql … | head -1`: the reader leaves long before the end (far beyond a pipe's
    # buffer), the command ends quietly
    out = subprocess.run(f"{sys.executable} -m flows.cli sql 'SELECT * FROM range(300000)' "
                         f"--format csv --home {home} | head -1; exit $PIPESTATUS",
                         shell=True, capture_output=True, text=True, cwd=ROOT,
                         executable="/bin/bash")
    assert out.stdout == "range\n" and out.stderr == "" and out.returncode == 0
