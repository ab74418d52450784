"""Docs that are generated must be current."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_table_reference_is_current() -> None:
    generator = runpy.run_path(str(ROOT / "tools" / "gen_table_docs.py"))
    expected = generator["render"]()
    current = (ROOT / "docs" / "tables.md").read_text()
    assert current == expected, "docs/tables.md is stale: run `make docs`"
