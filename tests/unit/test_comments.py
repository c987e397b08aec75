"""The warehouse's table comments and the README's warehouse table say the same."""

import re
from pathlib import Path

from warehouse.comments import TABLE_COMMENTS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_warehouse_table_matches_the_comments_written_into_duckdb():
    block = README.read_text(encoding="utf-8").split("## The warehouse (DuckDB)")[1]
    block = block.split("\n## ")[0]
    documented = {}
    for line in block.splitlines():
        m = re.match(r"^\| (`[^|]+`) \| (.+) \|$", line)
        if m:
            for name in re.findall(r"`([^`]+)`", m.group(1)):
                documented[name] = m.group(2).replace("`", "")
    assert documented == TABLE_COMMENTS
