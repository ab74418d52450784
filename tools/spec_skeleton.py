"""Print a spec skeleton for osquery tables: names, types and options from
osquery's schema, descriptions left for the author to write.

    python tools/spec_skeleton.py processes process_envs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCHEMA = Path(__file__).resolve().parent.parent / "tests" / "data" / "osquery" / "osquery_schema.json"
OPTIONS = ("index", "required", "additional", "optimized", "hidden")
TYPES = {"TEXT": "TEXT", "INTEGER": "INTEGER", "BIGINT": "BIGINT", "UNSIGNED BIGINT": "UNSIGNED_BIGINT",
         "DOUBLE": "DOUBLE", "BLOB": "BLOB"}


def skeleton(table: dict) -> str:
    lines = [f'    table(\n        "{table["name"]}",\n        "",\n        [']
    for col in table["columns"]:
        args = [f'"{col["name"]}"', TYPES[col["type"]], '""']
        args += [f"{opt}=True" for opt in OPTIONS if col[opt]]
        if col.get("collate"):
            args.append(f'collate="{col["collate"]}"')
        if col.get("aliases"):
            args.append(f"aliases={tuple(col['aliases'])!r}")
        if col.get("platforms"):
            args.append(f"platforms=frozenset({sorted(col['platforms'])!r})")
        lines.append(f"            Column({', '.join(args)}),")
    lines.append("        ],")
    lines.append(f"        platforms=frozenset({sorted(table['platforms'])!r}),")
    for attr in ("cacheable", "user_data", "utility", "evented"):
        if table[attr]:
            lines.append(f"        {attr}=True,")
    if table.get("aliases"):
        lines.append(f"        aliases={tuple(table['aliases'])!r},")
    if table.get("other_attributes", {}).get("no_pkey"):
        lines.append("        no_pkey=True,")
    lines.append("    ),")
    return "\n".join(lines)


def main() -> None:
    tables = {t["name"]: t for t in json.loads(SCHEMA.read_text())["tables"]}
    for name in sys.argv[1:]:
        print(skeleton(tables[name]))


if __name__ == "__main__":
    main()
