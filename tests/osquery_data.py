"""Paths of the reference data the tests compare against (osquery's schema and packs)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
OSQUERY_SCHEMA = DATA / "osquery" / "osquery_schema.json"
OSQUERY_PACKS = DATA / "osquery" / "packs"


@cache
def osquery_tables() -> dict[str, dict[str, Any]]:
    """osquery's own table definitions, by name (reference data)."""
    data = json.loads(OSQUERY_SCHEMA.read_text())
    return {t["name"]: t for t in data["tables"]}
