"""docs/FAULTS.md is the matrix the tests check, not a list that drifts from them."""

import importlib.util

from tests.helpers import ROOT


def test_the_fault_matrix_document_is_generated_from_the_tests():
    spec = importlib.util.spec_from_file_location("write_fault_matrix",
                                                  ROOT / "scripts" / "write_fault_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "FAULTS.md").read_text(encoding="utf-8") == module.matrix(), (
        "docs/FAULTS.md is out of date: uv run python scripts/write_fault_matrix.py")
