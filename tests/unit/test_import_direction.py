"""Imports flow one way: flows → warehouse → transforms; transforms stays pure, flows runs no
SQL, and no module imports itself back through others."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "transforms", "warehouse")


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (relative imports
    resolved)."""
    package = path.parent.name
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = f"{package}.{module}" if module else package
            out.add(module)
            # `from flows import connectors` imports the module flows.connectors
            out |= {f"{module}.{a.name}" for a in node.names}
    return out


def project_graph() -> dict[str, set[str]]:
    modules = {f"{p}.{f.stem}": f for p in PACKAGES for f in (ROOT / p).glob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name}
            for name, path in modules.items()}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("transforms", {"prefect", "flows", "warehouse", "requests", "duckdb"}),
        ("warehouse", {"prefect", "flows", "requests"}),
    ],
)
def test_layer_does_not_import_what_sits_above_it(package, forbidden):
    for path in sorted((ROOT / package).glob("*.py")):
        roots = {m.split(".")[0] for m in imports_of(path)}
        assert not roots & forbidden, f"{package}/{path.name} imports {roots & forbidden}"


def test_no_import_cycle_between_the_project_modules():
    graph = project_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


_SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE (OR REPLACE )?TABLE)\b")


def test_flows_run_no_sql():
    """Every read and write of a table is in warehouse/: flows only orchestrate."""
    for path in sorted((ROOT / "flows").glob("*.py")):
        text = path.read_text()
        assert "execute(" not in text and "executemany(" not in text, \
            f"flows/{path.name} runs SQL"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not _SQL.search(node.value), f"flows/{path.name} holds SQL: {node.value!r}"
