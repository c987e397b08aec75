"""Test settings shared by every tier: Prefect stays local, quiet and untracked."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Before anything imports prefect: a project-local home, no telemetry, patience on 2 cores.
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
# Under pytest-xdist each worker gets its own home: the temporary Prefect servers that the
# subprocess tests start keep their SQLite database there, and two writers would lock it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _home = Path(os.environ["PREFECT_HOME"]) / "workers" / os.environ["PYTEST_XDIST_WORKER"]
    _home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(_home)
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from transforms.places import CommuneIndex  # noqa: E402


@pytest.fixture(scope="session")
def tiny_communes() -> CommuneIndex:
    """A hand-made reference: Lyon with two arrondissements, Aubenas and its neighbour, a
    former commune (Arbignieu → Arboys en Bugey), Ajaccio and Saint-Denis (La Réunion)."""
    communes = pd.DataFrame(
        [
            ("69123", "Lyon", "COM", None, "69", "84"),
            ("69381", "Lyon 1er Arrondissement", "ARM", "69123", "69", "84"),
            ("69383", "Lyon 3e Arrondissement", "ARM", "69123", "69", "84"),
            ("07019", "Aubenas", "COM", None, "07", "84"),
            ("07002", "Ailhon", "COM", None, "07", "84"),
            ("01015", "Arboys en Bugey", "COM", None, "01", "84"),
            ("01015", "Arbignieu", "COMD", "01015", "01", "84"),
            ("2A004", "Ajaccio", "COM", None, "2A", "94"),
            ("97411", "Saint-Denis", "COM", None, "974", "04"),
            ("43157", "Le Puy-en-Velay", "COM", None, "43", "84"),
        ],
        columns=["code_insee", "nom", "type", "parent_code", "departement", "region"],
        dtype=object,
    )
    postcodes = pd.DataFrame(
        [
            ("69001", "69381"),
            ("69003", "69383"),
            ("07200", "07019"),
            ("07200", "07002"),
            ("01300", "01015"),
            ("20000", "2A004"),
            ("97400", "97411"),
            ("43000", "43157"),
        ],
        columns=["code_postal", "code_insee"],
        dtype=object,
    )
    deps = pd.DataFrame(
        [
            ("69", "84"),
            ("07", "84"),
            ("01", "84"),
            ("2A", "94"),
            ("974", "04"),
            ("43", "84"),
            ("42", "84"),
        ],
        columns=["departement", "region"],
        dtype=object,
    )
    return CommuneIndex(communes, postcodes, deps)
