"""Write the table reference (docs/tables.md) from the registered specs.

    python tools/gen_table_docs.py > docs/tables.md

tests/test_docs.py fails when the committed file differs from this output.
"""

from __future__ import annotations

from hostql.tables.registry import all_specs
from hostql.tables.spec import TableSpec

HEADER = """# Tables

Generated from the table specs by `tools/gen_table_docs.py` (`make docs`); do not
edit by hand. Names, columns, types and column options are osquery's, so
queries written for osquery run unchanged.

Column options: **index** (constraints are handed to the table), **required**
(the query must constrain one of the required columns), **additional**
(constraints change what the table produces), **optimized** (`IN (...)` lists are
read in one pass), **hidden** (not part of `SELECT *`; name it explicitly).
"""


def _options(spec: TableSpec, platform: str = "linux") -> dict[str, str]:
    out = {}
    for col in spec.columns:
        opts = [name for name in ("required", "index", "additional", "optimized") if getattr(col, name)]
        if col.hidden_on(platform):
            opts.append("hidden")
        if col.platforms is not None:
            opts.append("only " + ", ".join(sorted(col.platforms)))
        if col.collate:
            opts.append(f"collate {col.collate.lower()}")
        if col.aliases:
            opts.append("alias " + ", ".join(col.aliases))
        out[col.name] = ", ".join(opts)
    return out


def render_table(spec: TableSpec) -> str:
    attrs = [a for a in ("cacheable", "user_data", "utility", "evented") if getattr(spec, a)]
    lines = [f"## {spec.name}", "", spec.description, ""]
    meta = [f"Platforms: {', '.join(sorted(spec.platforms))}"]
    if spec.aliases:
        meta.append(f"also queryable as: {', '.join(spec.aliases)}")
    if attrs:
        meta.append(f"attributes: {', '.join(attrs)}")
    lines += ["; ".join(meta) + ".", "", "| column | type | options | description |", "|---|---|---|---|"]
    options = _options(spec)
    for col in spec.columns:
        desc = col.description.replace("|", "\\|")
        lines.append(f"| `{col.name}` | {col.type.value} | {options[col.name]} | {desc} |")
    if spec.examples:
        lines += ["", "Examples:", ""] + [f"    {ex}" for ex in spec.examples]
    return "\n".join(lines) + "\n"


def render() -> str:
    specs = sorted(all_specs().values(), key=lambda s: s.name)
    index = ", ".join(f"[{s.name}](#{s.name})" for s in specs)
    parts = [HEADER, f"{len(specs)} tables: {index}", ""] + [render_table(s) for s in specs]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
