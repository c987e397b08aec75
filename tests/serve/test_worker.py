"""The worker path of README "Run it every day": a process work pool, `prefect deploy` from a
prefect.yaml written by `siae serve --write-prefect-yaml`, a worker started as a team would,
and deployments run by it on a real Prefect server."""

import os
import shutil
import subprocess

import yaml

from flows.cli import main
from tests.helpers import check_geojson, query
from tests.serve.prefect_server import BIN, ROOT, http, stop, wait_for

POOL = "siae-test-pool"


def _run(args, env, cwd=ROOT, timeout=300):
    out = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{args}: {out.stdout[-2000:]}{out.stderr[-2000:]}"
    return out.stdout


def _deployment_id(server: str, name: str) -> str:
    found = http.post(f"{server}/deployments/filter",
                      json={"deployments": {"name": {"any_": [name]}}}, timeout=10).json()
    (d,) = found
    return d


def _trigger(server: str, deployment_id: str) -> str:
    response = http.post(f"{server}/deployments/{deployment_id}/create_flow_run",
                         json={"state": {"type": "SCHEDULED"}}, timeout=10)
    assert response.status_code < 300, response.text
    return response.json()["id"]


def _runs_of(server: str, deployment_id: str) -> list[dict]:
    return http.post(f"{server}/flow_runs/filter", json={
        "deployments": {"id": {"any_": [deployment_id]}}}, timeout=10).json()


def _finished(server: str, run_id: str):
    run = http.get(f"{server}/flow_runs/{run_id}", timeout=10).json()
    return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None


def test_a_process_worker_runs_the_deployments_of_prefect_yaml(server, tmp_path):
    demo = tmp_path / "checkout" / "samples"
    shutil.copytree(ROOT / "samples", demo)
    home = tmp_path / "warehouse"
    env = {**os.environ, "PREFECT_API_URL": server, "PREFECT_HOME": str(tmp_path / "client"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("SIAE_HOME", None)
    # written as a team would, with this test's warehouse and sources file on the "workers"
    (tmp_path / "deploy").mkdir()
    prefect_file = tmp_path / "deploy" / "prefect.yaml"
    assert main(["serve", "--sources", str(demo / "sources.toml"), "--write-prefect-yaml",
                 str(prefect_file), "--home", str(home), "--work-pool", POOL]) == 0
    doc = yaml.safe_load(prefect_file.read_text(encoding="utf-8"))
    jobs = {d["name"]: d["work_pool"]["job_variables"]["env"] for d in doc["deployments"]}
    # outside the prefect.yaml's folder, the sources file is named by its absolute path
    assert jobs["consolidate"] == {"SIAE_HOME": str(home),
                                   "SIAE_SOURCES": str(demo / "sources.toml")}
    # `prefect work-pool create siae-pool --type process`, through the API (the CLI takes 8 s)
    response = http.post(f"{server}/work_pools/", json={"name": POOL, "type": "process"},
                         timeout=10)
    assert response.status_code < 300, response.text
    # from the checkout, as the README says (entrypoints are relative to it); the build step
    # runs `siae check --file-only` on the sources file. Three of the seven deployments, as
    # `--all` would deploy them one by one (each runs the build step: 4 s here)
    names = [a for n in ("ingest-reseau_iae_aura", "ingest-emplois_aura", "consolidate")
             for a in ("--name", n)]
    out = _run([str(BIN / "prefect"), "--no-prompt", "deploy", *names, "--prefect-file",
                str(prefect_file)], env)
    assert out.count("valid (the file alone)") == 3
    # the worker's machine: its checkout, where the runs move to (pull step), is this
    # repository; the worker itself starts elsewhere
    worker_env = {**env, "SIAE_ATLAS_DIR": str(ROOT), "PREFECT_WORKER_QUERY_SECONDS": "2"}
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", POOL,
                               "--type", "process"], env=worker_env, stdout=log, stderr=log,
                              cwd=tmp_path)
    try:
        good = _deployment_id(server, "ingest-reseau_iae_aura")
        assert good["work_pool_name"] == POOL
        assert good["pull_steps"][0]["prefect.deployments.steps.set_working_directory"][
            "directory"] == "{{ $SIAE_ATLAS_DIR }}"
        (demo / "emplois_aura.json").unlink()  # this source's file is gone
        bad = _deployment_id(server, "ingest-emplois_aura")
        # the server is shared with test_serve.py, whose deployments had the same names:
        # only runs made from now on count
        consolidate = _deployment_id(server, "consolidate")
        before = {r["id"] for r in _runs_of(server, consolidate["id"])}
        good_run, bad_run = _trigger(server, good["id"]), _trigger(server, bad["id"])

        def logs():
            return (tmp_path / "worker.log").read_text()[-4000:]

        done = wait_for(lambda: _finished(server, good_run), 300, "the ingest run", every=2)
        assert done["state_type"] == "COMPLETED", logs()
        failed = wait_for(lambda: _finished(server, bad_run), 300, "the failing run", every=2)
        assert failed["state_type"] == "FAILED", logs()
        assert failed["state"]["message"].startswith(
            "source emplois_aura failed, its last good data are kept"), failed["state"]
        # the changed source triggered the consolidation deployment, run by the same worker
        def consolidated():
            return [r for r in _runs_of(server, consolidate["id"]) if r["id"] not in before
                    and r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]

        (run,) = wait_for(consolidated, 300, "the triggered consolidation", every=2)
        assert run["state_type"] == "COMPLETED", logs()
        assert run["state"]["message"].startswith("published")
        # the job variables reached the runs: the warehouse is where prefect.yaml put it
        assert check_geojson(home / "publish" / "siae.geojson") > 0
        assert ("stage", "reseau_iae_aura", "ok") in query(
            home, "SELECT step, source, status FROM ops.runs WHERE source = 'reseau_iae_aura'")
    finally:
        stop(worker)
        log.close()
