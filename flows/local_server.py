"""The temporary Prefect server of a one-shot command (`siae sync`), which dies with it.

Without PREFECT_API_URL, Prefect starts a temporary server in a child process and stops it at
exit; a `kill -9` of the command leaves that child running (about 200 MB each). Here the
same server (Prefect's app factory under uvicorn, as Prefect starts it) is a child that the
kernel stops when its parent dies (Linux `PR_SET_PDEATHSIG`), and SIGTERM of the command
stops it too. With PREFECT_API_URL set, the configured server is used and nothing starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int) -> list[str]:
    """The command Prefect itself runs for its temporary server (Prefect is not imported
    here: its settings must see PREFECT_API_URL when it is)."""
    origin = importlib.util.find_spec("prefect").origin
    return [sys.executable, "-m", "uvicorn", "--app-dir",
            str(Path(origin).resolve().parent.parent), "--factory",
            "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
            str(port), "--log-level", "error", "--lifespan", "on"]


@contextlib.contextmanager
def temporary_server(timeout: float | None = None,
                     meanwhile: Callable[[], object] | None = None) -> Iterator[str | None]:
    """Start the server unless PREFECT_API_URL is set; yield its API URL (set in the
    environment for this process); stop it on the way out.

    `meanwhile` runs while the server starts, with PREFECT_API_URL already set: the server
    takes about 15 s to answer on two cores, importing the flows 6 s, and the two overlap."""
    if os.environ.get("PREFECT_API_URL"):
        if meanwhile is not None:
            meanwhile()
        yield os.environ["PREFECT_API_URL"]
        return
    timeout = timeout or float(os.environ.get(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))
    port = _free_port()
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT__SERVER_FINAL": "1"}
    process = subprocess.Popen(server_command(port), env=env, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}/api"
    previous = signal.getsignal(signal.SIGTERM)

    def stop_on_term(signum, frame):  # SIGTERM: unwind, so that the server stops too
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop_on_term)
    try:
        # known before the server answers: Prefect, imported meanwhile, reads it then
        os.environ["PREFECT_API_URL"] = url
        if meanwhile is not None:
            meanwhile()
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the temporary Prefect server exited ({process.returncode})")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the temporary Prefect server did not answer within "
                                   f"{timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        signal.signal(signal.SIGTERM, previous)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
