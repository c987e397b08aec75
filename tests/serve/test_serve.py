"""`siae serve` against a real Prefect server started by this test session."""

import os
import shutil
import subprocess

from tests.helpers import check_geojson, query
from tests.serve.prefect_server import BIN, ROOT, http, stop, wait_for
from transforms.spec import load_spec


def test_serve_registers_deployments_and_a_triggered_run_completes(server, tmp_path):
    demo = tmp_path / "samples"
    shutil.copytree(ROOT / "samples", demo)
    home = tmp_path / "wh"
    env = {**os.environ, "PREFECT_API_URL": server, "PREFECT_HOME": str(tmp_path / "client"),
           "SIAE_HOME": str(home)}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(BIN / "siae"), "serve", "--sources",
                             str(demo / "sources.toml"), "--home", str(home)],
                            env=env, stdout=log, stderr=log, cwd=ROOT)
    try:
        spec = load_spec(demo / "sources.toml")
        expected = {f"ingest-{n}" for n in spec.sources} | {"consolidate"}

        def deployments():
            r = http.post(f"{server}/deployments/filter", json={}, timeout=10)
            found = {d["name"]: d for d in r.json()}
            return found if expected <= set(found) else None

        found = wait_for(deployments, 120, "the deployments of siae serve")
        crons = {name: [s["schedule"]["cron"] for s in d["schedules"]]
                 for name, d in found.items()}
        assert crons["consolidate"] == [spec.publication.schedule]
        assert all(crons[f"ingest-{n}"] == [s.schedule] for n, s in spec.sources.items())

        target = found["ingest-reseau_iae_aura"]
        response = http.post(f"{server}/deployments/{target['id']}/create_flow_run",
                                 json={"state": {"type": "SCHEDULED"}}, timeout=10)
        assert response.status_code < 300, response.text
        run = response.json()

        def finished(run_id):
            state = http.get(f"{server}/flow_runs/{run_id}", timeout=10).json()
            return state if state["state_type"] in ("COMPLETED", "FAILED", "CRASHED") else None

        done = wait_for(lambda: finished(run["id"]), 240, "the triggered run", every=2)
        assert done["state_type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        steps = query(home, "SELECT step, source, status FROM ops.runs WHERE source = "
                            "'reseau_iae_aura'")
        assert ("stage", "reseau_iae_aura", "ok") in steps

        tasks = http.post(f"{server}/task_runs/filter", json={
            "flow_runs": {"id": {"any_": [run["id"]]}}, "sort": "EXPECTED_START_TIME_ASC"},
            timeout=10).json()
        first_task = min(t["start_time"] for t in tasks if t["start_time"])
        from datetime import datetime
        overhead = (datetime.fromisoformat(first_task) - datetime.fromisoformat(run["created"]))
        print(f"trigger → first task: {overhead.total_seconds():.1f} s")

        # the source changed, so the consolidation deployment was triggered and published
        consolidate_id = found["consolidate"]["id"]

        def consolidated():
            runs = http.post(f"{server}/flow_runs/filter", json={
                "deployments": {"id": {"any_": [consolidate_id]}}}, timeout=10).json()
            return [r for r in runs if r["state_type"] == "COMPLETED"]

        wait_for(consolidated, 240, "the triggered consolidation", every=2)
        assert check_geojson(home / "publish" / "siae.geojson") > 0
    finally:
        stop(proc)
        log.close()
