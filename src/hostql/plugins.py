"""The plugin manager.  Built-in features register through the same hooks as
third-party plugins (``hostql`` entry points)."""

from __future__ import annotations

import functools
import importlib
import os

import pluggy

from hostql import hookspecs

DEFAULT_PLUGINS: tuple[str, ...] = ("hostql.tables.builtin",)


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("hostql")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    # Tests set HOSTQL_NO_ENTRYPOINTS so installed third-party plugins cannot
    # change what they observe.
    if not os.environ.get("HOSTQL_NO_ENTRYPOINTS"):
        pm.load_setuptools_entrypoints("hostql")
    return pm
