"""Helpers of the tests against a real Prefect server (started once per folder, conftest.py)."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

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
