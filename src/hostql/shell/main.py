"""``hostql shell``: osqueryi's command line, and running SQL without a prompt.

Start-up time matters here (``hostql shell --json "SELECT 1"`` is a common
way to script the tool), so this module imports nothing heavy at module level:
no click (help text only), no prompt_toolkit (interactive only), and the
connection is built on first use, so ``--help`` or ``.help`` never build one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence

from hostql.agent.flags import FLAGS, FlagError, FlagValues, lookup, parse_argv
from hostql.shell import dotcommands
from hostql.shell.dotcommands import ShellExit, ShellState, cpu_times, timer_line
from hostql.shell.printer import render

# Not typing.TYPE_CHECKING, and no dataclasses: each import costs the shell's
# start-up several milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from hostql.sql.connection import Connection
    from hostql.tables.spec import TableSpec

# Options that are not osquery flags but belong to the shell's command line.
_VALUE_OPTIONS = frozenset({"query"})
# osqueryi flags the shell does not implement yet: refused rather than ignored,
# so a script never gets output that silently differs from what it asked for.
UNSUPPORTED_FLAGS = frozenset({"planner", "pack", "connect", "profile", "profile_delay"})


class UsageError(Exception):
    """A command line the shell cannot run; printed as ``Error: ...``, exit 1."""


class ShellArgs:
    """The shell's parsed command line."""

    def __init__(self) -> None:
        self.flags = FlagValues()
        self.query: str | None = None
        self.positional: list[str] = []
        self.help = False
        self.version = False


def parse_args(argv: Sequence[str]) -> ShellArgs:
    """Parse the shell's command line.

    The shell's own options (``--help``, ``--version``, ``--query SQL``) are
    taken out first; everything else goes to the agent's gflags-style parser
    (``--flag=value``, ``--flag value``, ``-flag``, ``--noflag``,
    ``--flagfile``), so the shell and the daemon accept the same flags.
    """
    args = ShellArgs()
    words: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            words.extend(argv[i - 1 :])
            break
        if len(word) < 2 or not word.startswith("-"):
            words.append(word)
            continue
        name, eq, value = word.lstrip("-").partition("=")
        flag = lookup(name)
        if flag is None and name in ("help", "h"):
            args.help = True
        elif flag is None and name == "version":
            args.version = True
        elif flag is None and name in _VALUE_OPTIONS:
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"flag --{name} needs a value")
                value = argv[i]
                i += 1
            args.query = value
        else:
            words.append(word)
            # Keep a flag's value with it so it is never read as an option.
            if flag is not None and flag.type != "bool" and not eq and i < len(argv):
                words.append(argv[i])
                i += 1
    args.flags, args.positional = parse_argv(words)
    for name in sorted(UNSUPPORTED_FLAGS):
        if name in FLAGS and not args.flags.is_default(name):
            raise UsageError(f"flag --{name} is not supported by hostql shell yet")
    return args


def output_state(flags: FlagValues) -> ShellState:
    """The initial output settings the flags ask for."""
    state = ShellState()
    for name in ("json", "json_pretty", "csv", "line", "list"):
        if flags.get(name):
            state.mode = name
            break
    state.header = bool(flags.get("header"))
    state.separator = str(flags.get("separator"))
    if state.mode == "csv" and flags.is_default("separator"):
        state.separator = ","
    state.nullvalue = str(flags.get("nullvalue"))
    return state


def split_statements(sql: str) -> Iterator[str]:
    """Complete statements of ``sql`` in order; a trailing unterminated one too."""
    import apsw

    start = 0
    index = 0
    while True:
        index = sql.find(";", index)
        if index < 0:
            break
        index += 1
        if apsw.complete(sql[start:index]):
            yield sql[start:index]
            start = index
    if sql[start:].strip():
        yield sql[start:]


class Shell:
    """One shell session: settings, a lazily built connection and the output."""

    def __init__(self, flags: FlagValues | None = None, state: ShellState | None = None, *,
                 out: TextIO | None = None, err: TextIO | None = None,
                 tables: dict[str, TableSpec] | None = None) -> None:
        self.flags = flags if flags is not None else FlagValues()
        self.state = state if state is not None else output_state(self.flags)
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.errors = 0
        self._tables = tables
        self._connection: Connection | None = None
        self._buffer: list[str] = []
        self._start: int | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            from hostql.runtime import Runtime
            from hostql.sql.connection import Connection

            self._connection = Connection(Runtime(flags=self.flags), tables=self._tables)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- output ---------------------------------------------------------------

    def write(self, text: str) -> None:
        if text:
            self.out.write(text)

    def write_err(self, text: str) -> None:
        self.err.write(text)

    def error(self, message: str) -> None:
        self.out.flush()
        self.err.write(f"Error: {message}\n")
        self.err.flush()

    def print_result(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        s = self.state
        self.write(render(s.mode, columns, rows, nullvalue=s.nullvalue, header=s.header,
                          separator=s.separator, widths=s.widths))

    # -- running ----------------------------------------------------------------

    def run_sql(self, sql: str, *, line: int | None = None) -> bool:
        """Run every statement of ``sql``; stop at the first error.

        ``line`` is where the text started in a script: errors then read
        ``Error: near line N: ...`` as the SQLite shell words them for
        non-interactive input.
        """
        from hostql.sql.connection import QueryError

        connection = self.connection
        try:
            for statement in split_statements(sql):
                if self.state.echo:
                    self.write(statement.strip() + "\n")
                started = cpu_times() if self.state.timer else None
                result = connection.execute(statement)
                # Statements without result columns (CREATE VIEW, ...) print
                # nothing, not even an empty JSON array.
                if result.columns:
                    self.print_result(result.columns, result.rows)
                if started is not None:
                    ended = cpu_times()
                    self.write(timer_line(*(b - a for a, b in zip(started, ended))))
        except QueryError as exc:
            self._failed(str(exc), line)
            return False
        except Exception as exc:
            # A table generator bug should not kill an interactive session.
            self._failed(f"{type(exc).__name__}: {exc}", line)
            return False
        return True

    def _failed(self, message: str, line: int | None) -> None:
        self.errors += 1
        self.error(message if line is None else f"near line {line}: {message}")

    def run_dot(self, line: str) -> int:
        """A dot-command; :class:`ShellExit` passes through."""
        if self.state.echo:
            self.write(line.strip() + "\n")
        rc = dotcommands.run(self, line)
        if rc:
            self.errors += 1
        return rc

    def run_command(self, text: str, *, line: int | None = None) -> bool:
        """A dot-command or SQL, as given on the command line."""
        if text.lstrip().startswith("."):
            return self.run_dot(text) == 0
        return self.run_sql(text, line=line)

    @property
    def pending(self) -> bool:
        """True while a statement has been started but not completed."""
        return bool(self._buffer)

    def feed(self, text: str, lineno: int | None = None) -> bool:
        """Take one input line; False when ``.bail on`` says to stop.

        As in the SQLite shell, a dot-command is a line of its own and SQL
        is gathered until it forms complete statements.  ``lineno`` (scripts
        only) is what errors report as ``near line N``.
        """
        import apsw

        text = text.rstrip("\r\n")
        if not self._buffer:
            if text.lstrip().startswith("."):
                return not (self.run_dot(text) and self.state.bail)
            if not text.strip():
                return True
            self._start = lineno
        self._buffer.append(text)
        if ";" in text:
            sql = "\n".join(self._buffer)
            if apsw.complete(sql):
                self._buffer = []
                return self.run_sql(sql, line=self._start) or not self.state.bail
        return True

    def discard(self) -> None:
        """Forget a statement being typed (Ctrl-C at the prompt)."""
        self._buffer = []

    def finish(self) -> None:
        """End of input: what is left without a ';' is run too, so that
        ``echo "SELECT 1" | hostql shell`` works."""
        sql = "\n".join(self._buffer)
        self._buffer = []
        if sql.strip():
            self.run_sql(sql, line=self._start)

    def process_lines(self, lines: Iterable[str], *, numbered: bool = True) -> None:
        """Run a script line by line; stop early only for ``.bail on``."""
        for lineno, text in enumerate(lines, 1):
            if not self.feed(text, lineno if numbered else None):
                return
        self.finish()

    def query_columns(self, sql: str) -> list[tuple[str, str]]:
        """(name, type) of each result column of ``sql``, for ``.types``.

        Types come from the declared column type; an expression has none, so
        its type is taken from the first row's value, else ``UNKNOWN``.
        """
        import apsw

        from hostql.sql.connection import QueryError

        cursor = self.connection.db.cursor()
        cursor.exec_trace = lambda *_: False  # prepare only, never step
        try:
            try:
                cursor.execute(sql)
            except apsw.ExecTraceAbort:
                pass
            description = cursor.description
        except apsw.Error as exc:
            raise QueryError(_sqlite_message(exc)) from exc
        types = [d[1] or "" for d in description]
        if not all(types):
            result = self.connection.execute(sql)
            first = result.rows[0] if result.rows else ()
            for i, declared in enumerate(types):
                if not declared:
                    types[i] = _value_type(first[i]) if i < len(first) else "UNKNOWN"
        return [(d[0], t) for d, t in zip(description, types)]


def _sqlite_message(exc: Exception) -> str:
    """SQLite's message without apsw's ``SQLError:`` class prefix."""
    text = str(exc)
    prefix, sep, rest = text.partition(": ")
    if sep and prefix.endswith("Error") and " " not in prefix:
        return rest
    return text


def _value_type(value: Any) -> str:
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "TEXT"
    if isinstance(value, bytes):
        return "BLOB"
    return "UNKNOWN"


# --- help -------------------------------------------------------------------------


def shell_help() -> str:
    """``hostql shell --help``; click's formatter only lays the text out, and is
    imported here so that running a query never pays for it."""
    import click

    import hostql
    from hostql.agent.flags import FLAG_DEFINITIONS

    formatter = click.HelpFormatter(max_width=100)
    formatter.write_text(f"hostql {hostql.__version__}, your OS as a relational database "
                         f"(osqueryi-compatible, osquery {hostql.OSQUERY_VERSION}).")
    formatter.write_paragraph()
    formatter.write_usage("hostql shell", "[OPTION]... [SQL STATEMENT]")
    formatter.write_paragraph()
    formatter.write_text("SQL comes from the argument, --query, --query_file or standard input; "
                         "with none of those and a terminal, an interactive prompt starts.")
    shell_rows = [("--query SQL", "Run SQL and exit"), ("--help", "Show this message"),
                  ("--version", "Print the version")]
    other_rows: list[tuple[str, str]] = []
    for flag in FLAG_DEFINITIONS:
        if flag.hidden or flag.name in UNSUPPORTED_FLAGS:
            continue
        dash = "-" if len(flag.name) == 1 else "--"
        label = f"{dash}{flag.name}" if flag.type == "bool" else f"{dash}{flag.name} VALUE"
        text = flag.description
        if flag.type != "bool" and flag.default != "":
            text += f" (default: {flag.default!s})"
        (shell_rows if flag.shell_only else other_rows).append((label, text))
    with formatter.section("Shell options"):
        formatter.write_dl(shell_rows)
    with formatter.section("osquery flags (--flag=value or --flag value; --noflag for booleans)"):
        formatter.write_dl(other_rows)
    return formatter.getvalue()


# --- entry point ------------------------------------------------------------------


def _read_query_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read query file {path}: {reason}") from None


def run(argv: Sequence[str], *, stdin: TextIO | None = None, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> int:
    """Run the shell with ``argv`` (without the program and subcommand names)."""
    stdin = stdin if stdin is not None else sys.stdin
    err = stderr if stderr is not None else sys.stderr
    try:
        args = parse_args(argv)
        if args.help:
            (stdout or sys.stdout).write(shell_help())
            return 0
        if args.version:
            import hostql

            (stdout or sys.stdout).write(f"hostql version {hostql.__version__} "
                                         f"(osquery {hostql.OSQUERY_VERSION})\n")
            return 0
        if len(args.positional) > 1:
            raise UsageError("only one SQL statement argument is accepted (quote the SQL)")
        query = args.query
        query_file = str(args.flags.get("query_file"))
        if query is None and query_file:
            query = _read_query_file(query_file)
        if query is None and args.positional:
            query = args.positional[0]
    except (UsageError, FlagError) as exc:
        err.write(f"Error: {exc}\n")
        return 1

    output = str(args.flags.get("output")) if "output" in FLAGS else ""
    out_file: TextIO | None = None
    if output and output != "-":
        try:
            out_file = open(output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            err.write(f"Error: cannot open output file {output}: {exc.strerror}\n")
            return 1
    shell = Shell(args.flags, out=out_file or stdout, err=err)
    try:
        return _dispatch(shell, args, query, stdin)
    except ShellExit as stop:
        return stop.code if stop.code is not None else int(shell.errors > 0)
    finally:
        shell.out.flush()
        shell.close()
        if out_file is not None:
            out_file.close()


def _dispatch(shell: Shell, args: ShellArgs, query: str | None, stdin: TextIO) -> int:
    table = str(args.flags.get("A"))
    if args.flags.get("L"):
        return 0 if shell.run_dot(".tables") == 0 else 1
    if table:
        return 0 if shell.run_dot(f".all {table}") == 0 else 1
    if query is not None:
        return 0 if shell.run_command(query) else 1
    if not stdin.isatty():
        shell.process_lines(stdin)
        return int(shell.errors > 0)
    from hostql.shell.repl import run_repl

    return run_repl(shell)
