"""The Dockerfile's steps replayed without Docker (none on the test machines): what its COPY
lines put in the image and its `uv sync` lines install are enough to run the pipeline, the
dependencies are the locked ones without the dev group, and the image runs as a non-root user
with the warehouse on a volume."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            current = ""
    return lines


def _env(instructions) -> dict[str, str]:
    env = {}
    for word, rest in instructions:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _uv() -> list[str]:
    named = os.environ.get("SIAE_UV")  # set by .ci/run: the uv it installed
    if named:
        return shlex.split(named)
    if shutil.which("uv"):
        return ["uv"]
    pytest.skip("no uv on this machine (.ci/run installs one and sets SIAE_UV)")


def test_the_image_runs_as_a_user_with_its_data_on_a_volume():
    steps = _instructions()
    env = _env(steps)
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    (volume,) = [rest for word, rest in steps if word == "VOLUME"]
    assert env["SIAE_HOME"].startswith("/data") and '"/data"' in volume
    assert env["SIAE_ATLAS_DIR"] == [rest for word, rest in steps if word == "WORKDIR"][0]
    assert all("--locked" in rest for word, rest in steps if word == "RUN" and "uv sync" in rest)


def test_what_the_image_holds_runs_the_demo(tmp_path):
    steps = _instructions()
    app = tmp_path / "app"
    app.mkdir()
    venv = app / ".venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never",
           "UV_PYTHON": sys.executable}
    env.pop("VIRTUAL_ENV", None)
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, dest = rest.split()
            for source in sources:
                # `COPY a b ./` keeps the names; `COPY flows ./flows` names the target
                target = app / dest / source if dest.endswith("/") else app / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.duckdb*",
                                                                  "raw", "releases", "publish"))
                else:
                    shutil.copy2(ROOT / source, target)
        elif word == "RUN" and rest.startswith("uv sync"):
            # the same command; bytecode compilation left out (it only saves start-up time)
            out = subprocess.run([*_uv(), *shlex.split(rest)[1:], "--quiet"], cwd=app, env=env,
                                 capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr[-3000:]
    binaries = venv / "bin"
    assert (binaries / "prefect").exists() and (binaries / "siae").exists()  # CMD, flows
    assert not (binaries / "pytest").exists()  # no dev dependencies in the image
    run_env = {**os.environ, "SIAE_HOME": str(tmp_path / "data" / "warehouse"),
               "PREFECT_HOME": str(tmp_path / "data" / "prefect")}
    run_env.pop("VIRTUAL_ENV", None)
    out = subprocess.run([str(binaries / "siae"), "sync", "--demo", "--no-prefect"], cwd=app,
                         env=run_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (tmp_path / "data" / "warehouse" / "publish" / "siae.geojson").exists()
    # prefect.yaml's build step, as a deploy from the image would run it
    out = subprocess.run([str(binaries / "siae"), "check", "--file-only", "--sources",
                          "sources.toml"], cwd=app, env=run_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "valid (the file alone)" in out.stdout, out.stderr
