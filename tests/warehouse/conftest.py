"""A fresh warehouse file per test, schema applied."""

import pytest

from warehouse.db import connect


@pytest.fixture
def con(tmp_path):
    with connect(tmp_path / "siae.duckdb") as c:
        yield c
