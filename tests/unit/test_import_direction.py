"""Imports flow one way: flows → transforms, warehouse; transforms stays pure."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_roots(package: str) -> dict[str, set[str]]:
    out = {}
    for path in sorted((ROOT / package).glob("*.py")):
        roots = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
        out[path.name] = roots
    return out


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("transforms", {"prefect", "flows", "warehouse", "requests", "duckdb"}),
        ("warehouse", {"prefect", "flows", "requests"}),
    ],
)
def test_layer_does_not_import_what_sits_above_it(package, forbidden):
    for name, roots in imported_roots(package).items():
        assert not roots & forbidden, f"{package}/{name} imports {roots & forbidden}"
