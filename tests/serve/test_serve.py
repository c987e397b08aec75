"""`siae serve` against a real Prefect server started by this test session."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tests.helpers import check_geojson, query
from transforms.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# The server answers 503 when its SQLite database is busy (e.g. while the scheduler inserts
# runs) and expects clients to retry, as Prefect's own client does.
http = requests.Session()
http.mount("http://", HTTPAdapter(max_retries=Retry(
    total=8, backoff_factor=0.5, status_forcelist=(503,),
    allowed_methods=None, respect_retry_after_header=True)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    # A few scheduled runs per deployment are enough to see the schedules work; the default
    # (100 each) makes SQLite busy on a 2-core machine.
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "5"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=log)
    api = f"http://127.0.0.1:{port}/api"

    def healthy():
        try:
            return requests.get(f"{api}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, 180, "the Prefect server")
        yield api
    finally:
        stop(proc)
        log.close()


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
