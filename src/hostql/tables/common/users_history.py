"""Shell history files: which ones a user has and how their lines are read.

Three line shapes exist:

* bash with ``HISTTIMEFORMAT``: a ``#<seconds>`` line stamps the next command;
* zsh ``EXTENDED_HISTORY``: ``: <seconds>:<duration>;<command>``;
* anything else: a bare command, time 0.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Iterator

from hostql.tables.common.users_accounts import in_root

log = logging.getLogger(__name__)

# Relative to the home directory, in the order osquery reads them.
HISTORY_FILES = (".bash_history", ".zsh_history", ".zhistory", ".history", ".sh_history")
# macOS Terminal keeps one history per session here.
BASH_SESSIONS = ".bash_sessions"

_BASH_STAMP = re.compile(r"#([0-9]+)")
_ZSH_LINE = re.compile(r": {0,10}([0-9]{1,11}):[0-9]+;(.*)", re.DOTALL)


def parse_history_lines(lines: Iterator[str]) -> Iterator[tuple[int, str]]:
    """(time, command) for each command line."""
    pending: int | None = None
    for line in lines:
        if not line:
            continue
        if pending is None:
            stamp = _BASH_STAMP.fullmatch(line)
            if stamp:
                pending = int(stamp.group(1))
                continue
        if pending is not None:
            # A bash stamp applies to exactly the next line, whatever it holds.
            yield pending, line
            pending = None
            continue
        zsh = _ZSH_LINE.fullmatch(line)
        if zsh:
            yield int(zsh.group(1)), zsh.group(2)
        else:
            yield 0, line


def _file_lines(path: str) -> Iterator[str]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        log.debug("cannot read history file %s: %s", path, exc)
        return
    with f:
        for raw in f:
            yield raw.rstrip(b"\n").decode("utf-8", errors="replace")


def read_history_file(root: str, path: str) -> Iterator[tuple[int, str]]:
    """(time, command) rows of one history file given by its in-root path."""
    return parse_history_lines(_file_lines(in_root(root, path)))


def history_files(root: str, home: str) -> list[str]:
    """In-root paths of the history files present in ``home``."""
    found = []
    for name in HISTORY_FILES:
        path = posixpath.join(home, name)
        if os.path.isfile(in_root(root, path)):
            found.append(path)
    sessions = posixpath.join(home, BASH_SESSIONS)
    try:
        names = sorted(os.listdir(in_root(root, sessions)))
    except OSError:
        names = []
    for name in names:
        if name.endswith(".history"):
            path = posixpath.join(sessions, name)
            if os.path.isfile(in_root(root, path)):
                found.append(path)
    return found
