"""Rewrite the README's table of canonical fields from the field table (transforms/fields.py).

    uv run python scripts/write_readme_fields.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transforms.fields import README_END, README_START, readme_table  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    README.write_text(text[:start] + readme_table() + text[end:], encoding="utf-8")
    print(f"{README}: field table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
