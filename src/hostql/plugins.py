"""Plugins: built-in features and third-party packages through the same hooks.

A plugin is a module with functions named after the hooks in
:mod:`hostql.hookspecs` (optionally marked with ``@hookimpl``).  Built-in
plugins are listed in :data:`DEFAULT_PLUGINS`; third-party ones are found in the
``hostql`` entry-point group.

pluggy (with the ``typing`` and ``inspect`` modules it needs) costs the shell
about a third of its start-up budget, so when no third-party plugin is
installed the built-in hook functions are called directly, in registration
order, with the same results the plugin manager would give.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    import pluggy

    from hostql.tables.spec import TableSpec

DEFAULT_PLUGINS: tuple[str, ...] = ("hostql.tables.builtin",)
ENTRY_POINT_GROUP = "hostql"


def entry_point_modules(group: str = ENTRY_POINT_GROUP, paths: list[str] | None = None) -> dict[str, str]:
    """Entry points of ``group`` in installed distributions: name -> module.

    ``importlib.metadata`` costs about 40 ms to import, so the
    ``entry_points.txt`` files are read directly.
    """
    found: dict[str, str] = {}
    for directory in paths if paths is not None else sys.path:
        try:
            names = os.listdir(directory or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            path = os.path.join(directory, name, "entry_points.txt")
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError:
                continue
            if f"[{group}]" in text:
                found.update((k, v) for k, v in _section(text, group).items() if k not in found)
    return found


def _section(text: str, group: str) -> dict[str, str]:
    """``name = module[:attr]`` lines of one ini section."""
    entries: dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
            continue
        if inside and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.split(":")[0].strip()
    return entries


def third_party_plugins() -> dict[str, str]:
    """Installed plugins; none under tests (``HOSTQL_NO_ENTRYPOINTS``) so they
    cannot change what the tests observe."""
    if os.environ.get("HOSTQL_NO_ENTRYPOINTS"):
        return {}
    return entry_point_modules()


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The pluggy manager with built-in and third-party plugins registered."""
    import pluggy

    from hostql import hookspecs

    class Manager(pluggy.PluginManager):
        def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
            opts = super().parse_hookimpl_opts(plugin, name)
            # Functions named after a hook count as implementations, marked or not.
            if opts is None and hasattr(hookspecs, name) and callable(getattr(plugin, name, None)):
                return {}
            return opts

    pm = Manager("hostql")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    for name, module in third_party_plugins().items():
        if pm.get_plugin(name) is None:
            pm.register(importlib.import_module(module), name)
    return pm


def _manager_needed() -> bool:
    return plugin_manager.cache_info().currsize > 0 or bool(third_party_plugins())


def _builtin_modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in DEFAULT_PLUGINS]


def collect_tables() -> list[TableSpec]:
    """Every table spec from every plugin (the ``register_tables`` hook)."""
    if _manager_needed():
        batches = plugin_manager().hook.register_tables()
        # pluggy calls the last registered plugin first; built-ins come first here.
        return [spec for batch in reversed(batches) for spec in batch]
    return [spec for module in _builtin_modules() for spec in module.register_tables()]


def prepare_connection(connection: object) -> None:
    """Let plugins add functions or tables to a new connection."""
    if _manager_needed():
        plugin_manager().hook.prepare_connection(connection=connection)
        return
    for module in _builtin_modules():
        hook = getattr(module, "prepare_connection", None)
        if hook is not None:
            hook(connection=connection)
