"""One real Prefect server for the tests of this folder (`siae serve`, a process worker)."""

import os
import subprocess

import pytest
import requests

from tests.serve.prefect_server import BIN, free_port, stop, wait_for


@pytest.fixture(scope="package")
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
