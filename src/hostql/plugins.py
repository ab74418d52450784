"""The plugin manager.  Built-in features register through the same hooks as
third-party plugins, which are found through the ``hostql`` entry-point group."""

from __future__ import annotations

import configparser
import functools
import importlib
import os
import sys

import pluggy

from hostql import hookspecs

DEFAULT_PLUGINS: tuple[str, ...] = ("hostql.tables.builtin",)
ENTRY_POINT_GROUP = "hostql"


def entry_point_modules(group: str = ENTRY_POINT_GROUP, paths: list[str] | None = None) -> dict[str, str]:
    """Entry points of ``group`` in installed distributions: name -> module.

    ``importlib.metadata`` costs about 40 ms to import, a quarter of the shell's
    start-up budget, so the ``entry_points.txt`` files are read directly.
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
            if f"[{group}]" not in text:
                continue
            parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            try:
                parser.read_string(text)
            except configparser.Error:
                continue
            for key, value in parser.items(group):
                found.setdefault(key, value.split(":")[0].strip())
    return found


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("hostql")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name)
    # Tests set HOSTQL_NO_ENTRYPOINTS so installed third-party plugins cannot
    # change what they observe.
    if not os.environ.get("HOSTQL_NO_ENTRYPOINTS"):
        for name, module in entry_point_modules().items():
            if pm.get_plugin(name) is None:
                pm.register(importlib.import_module(module), name)
    return pm
