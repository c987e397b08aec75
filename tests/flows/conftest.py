"""Flow tests: one temporary Prefect server for the whole session, demo samples in tmp."""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def demo(tmp_path) -> Path:
    """A private copy of samples/ (so a test may break a file) with its sources.toml."""
    folder = tmp_path / "samples"
    shutil.copytree(ROOT / "samples", folder)
    return folder
