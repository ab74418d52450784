"""The sudo policy file split into (source, header, rule_details) lines.

Like osquery this is not a sudoers grammar: each logical line is cut into its
first word and the rest.  Comments are dropped, backslash continuations are
joined, and ``#include``/``@include``/``#includedir``/``@includedir`` lines are
reported and then followed (relative targets resolve against the including
file's directory; files in an include directory whose name contains a dot or
ends with ``~`` are skipped, as sudo itself does).
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Iterator

from hostql.tables.common.users_accounts import in_root

log = logging.getLogger(__name__)

SUDOERS_PATH = "/etc/sudoers"
_BLANKS = " \t\v\r"
_INCLUDE = frozenset({"#include", "@include"})
_INCLUDEDIR = frozenset({"#includedir", "@includedir"})
# sudoers(5) allows at most 128 nested files.
MAX_DEPTH = 128

Row = list[str]  # [source, header, rule_details]; lists so continuations can extend them


def _read(root: str, path: str) -> str | None:
    try:
        with open(in_root(root, path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as exc:
        log.debug("cannot read sudoers file %s: %s", path, exc)
        return None


def _include_dir_files(root: str, directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(in_root(root, directory)))
    except OSError as exc:
        log.debug("cannot list sudoers include directory %s: %s", directory, exc)
        return []
    files = []
    for name in names:
        if "." in name or name.endswith("~"):
            continue
        path = posixpath.join(directory, name)
        if os.path.isfile(in_root(root, path)):
            files.append(path)
    return files


def _parse_file(root: str, path: str, depth: int, rows: list[Row]) -> None:
    if depth > MAX_DEPTH:
        log.debug("sudoers include depth limit reached at %s", path)
        return
    content = _read(root, path)
    if content is None:
        return
    continued = False
    for raw in content.split("\n"):
        line = raw.strip(_BLANKS)
        if not line:
            continue
        if continued and rows:
            # The previous line ended in a backslash: this one belongs to it.
            continued = line.endswith("\\")
            last = rows[-1]
            if last[2]:
                last[2] = last[2][:-1] + line
            else:
                last[1] = last[1][:-1]
                last[2] = line
            continue
        continued = False
        cut = len(line)
        for i, ch in enumerate(line):
            if ch in _BLANKS:
                cut = i
                break
        header, details = line[:cut], line[cut:].strip(_BLANKS)
        is_include, is_dir = header in _INCLUDE, header in _INCLUDEDIR
        if line[0] == "#" and not (is_include or is_dir):
            continue
        if (is_include or is_dir) and not details:
            continue  # an include without a target is just a comment
        if not (is_include or is_dir) and line.endswith("\\"):
            continued = True
        rows.append([path, header, details])
        if is_include or is_dir:
            target = details if details.startswith("/") else posixpath.join(posixpath.dirname(path), details)
            targets = _include_dir_files(root, target) if is_dir else [target]
            for included in targets:
                _parse_file(root, included, depth + 1, rows)


def parse_sudoers(root: str = "/", path: str = SUDOERS_PATH) -> Iterator[tuple[str, str, str]]:
    """(source, header, rule_details) for every rule line of ``path`` and its includes."""
    rows: list[Row] = []
    _parse_file(root, path, 1, rows)
    yield from ((source, header, details) for source, header, details in rows)
