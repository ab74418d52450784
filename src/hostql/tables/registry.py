"""The table registry: every spec contributed through ``register_tables``."""

from __future__ import annotations

import functools

from hostql.platform import current_platform
from hostql.plugins import collect_tables
from hostql.tables.spec import TableSpec


class DuplicateTableError(ValueError):
    pass


@functools.cache
def all_specs() -> dict[str, TableSpec]:
    """Every registered spec by name, whatever its platforms."""
    specs: dict[str, TableSpec] = {}
    for spec in collect_tables():
        if spec.name in specs:
            raise DuplicateTableError(f"table {spec.name} is registered twice")
        specs[spec.name] = spec
    return specs


def platform_specs(platform: str | None = None) -> dict[str, TableSpec]:
    """Specs of the tables that exist on ``platform`` (default: this host)."""
    platform = platform or current_platform()
    return {name: s for name, s in sorted(all_specs().items()) if platform in s.platforms}


def get_spec(name: str) -> TableSpec:
    return all_specs()[name]
