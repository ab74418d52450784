"""The interactive prompt of ``hostql shell`` (prompt_toolkit).

Only imported when standard input is a terminal and no SQL was given, because
prompt_toolkit alone takes longer to import than a whole non-interactive run.
Each typed line goes to :meth:`Shell.feed`, exactly like a line of a script, so
the two paths cannot drift apart; the prompt shows ``    ...> `` while a
statement is incomplete, as osqueryi does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from hostql.shell.dotcommands import COMMANDS, TABLE_ARGUMENT, ShellExit

if TYPE_CHECKING:
    from hostql.shell.main import Shell

PROMPT = "hostql> "
CONTINUATION = "    ...> "
BANNER = "Using a virtual database. Need help, type '.help'\n"

SQL_KEYWORDS: tuple[str, ...] = (
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "GLOB", "REGEXP", "IS", "NULL",
    "JOIN", "LEFT", "CROSS", "INNER", "ON", "USING", "AS", "GROUP", "BY", "ORDER", "HAVING", "LIMIT",
    "OFFSET", "DISTINCT", "UNION", "ALL", "EXCEPT", "INTERSECT", "CASE", "WHEN", "THEN", "ELSE", "END",
    "WITH", "RECURSIVE", "ASC", "DESC", "BETWEEN", "EXISTS", "CAST", "COUNT", "CREATE", "TEMP", "VIEW",
    "DROP", "PRAGMA",
)

_WORD = re.compile(r"[A-Za-z0-9_]*$")


def history_path() -> Path:
    """``$HOSTQL_HOME/.history``, by default ``~/.hostql/.history``."""
    home = os.environ.get("HOSTQL_HOME") or os.path.join(os.path.expanduser("~"), ".hostql")
    return Path(home) / ".history"


class ShellCompleter(Completer):
    """Dot-commands at the start of a line; table names, then column names
    and keywords elsewhere (table names after ``.schema``, ``.all``, ...)."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self._tables: list[str] | None = None
        self._columns: list[str] | None = None

    def _names(self) -> tuple[list[str], list[str]]:
        # Built on first use: the connection's specs list every table.
        if self._tables is None or self._columns is None:
            specs = self.shell.connection.tables
            self._tables = sorted(specs)
            self._columns = sorted({c.name for spec in specs.values() for c in spec.columns})
        return self._tables, self._columns

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        stripped = text.lstrip()
        if stripped.startswith(".") and not self.shell.pending:
            if " " not in stripped:
                for name in sorted(COMMANDS):
                    if name.startswith(stripped[1:]):
                        yield Completion("." + name, start_position=-len(stripped))
                return
            command = stripped[1:].split(None, 1)[0]
            if command not in TABLE_ARGUMENT:
                return
            word = _WORD.search(text)
            prefix = word.group(0) if word else ""
            tables, _ = self._names()
            yield from _matching(tables, prefix)
            return
        match = _WORD.search(text)
        prefix = match.group(0) if match else ""
        if not prefix:
            return
        tables, columns = self._names()
        seen: set[str] = set()
        for completion in _matching(tables, prefix):
            seen.add(completion.text)
            yield completion
        for completion in _matching(columns, prefix):
            if completion.text not in seen:
                seen.add(completion.text)
                yield completion
        upper = prefix.upper()
        for keyword in SQL_KEYWORDS:
            if keyword.startswith(upper) and keyword not in seen:
                # Keep the user's case: "sel" completes to "select".
                yield Completion(keyword if prefix.isupper() else keyword.lower(), start_position=-len(prefix))


def _matching(names: Iterable[str], prefix: str) -> Iterator[Completion]:
    for name in names:
        if name.startswith(prefix):
            yield Completion(name, start_position=-len(prefix))


def run_repl(shell: Shell) -> int:
    """Prompt until ``.quit``/``.exit`` or end of input; 1 if anything failed.

    ``.exit N`` raises :class:`ShellExit`, which the caller turns into the
    exit code.
    """
    history: History
    try:
        path = history_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(path))
    except OSError:
        # An unwritable home must not stop the shell; history is then per session.
        history = InMemoryHistory()
    session: PromptSession[str] = PromptSession(
        history=history,
        completer=ShellCompleter(shell),
        complete_while_typing=False,
    )
    shell.write(BANNER)
    shell.out.flush()
    while True:
        try:
            line = session.prompt(CONTINUATION if shell.pending else PROMPT)
        except KeyboardInterrupt:
            shell.discard()
            continue
        except EOFError:
            break
        try:
            shell.feed(line)
        except ShellExit:
            shell.out.flush()
            raise
        except KeyboardInterrupt:
            # Ctrl-C during a long query abandons it, not the session.
            shell.discard()
            shell.error("interrupted")
        shell.out.flush()
    shell.finish()
    return int(shell.errors > 0)
