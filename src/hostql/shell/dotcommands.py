"""The shell's dot-commands (``.tables``, ``.mode line``, ...), as osqueryi has them.

Each handler gets the running :class:`~hostql.shell.main.Shell` and the
command's arguments and returns 0 or 1 (the command failed); ``.exit`` and
``.quit`` raise :class:`ShellExit`.  Arguments are split the way the SQLite
shell splits them, and a command may be abbreviated to any unique prefix.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from hostql.shell.printer import MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hostql.shell.main import Shell


class ShellState:
    """The settings dot-commands change."""

    def __init__(self, mode: str = "pretty", header: bool = True, separator: str = "|", nullvalue: str = "",
                 widths: list[int] | None = None, echo: bool = False, bail: bool = False,
                 timer: bool = False) -> None:
        self.mode = mode
        self.header = header
        self.separator = separator
        self.nullvalue = nullvalue
        self.widths = widths if widths is not None else []
        self.echo = echo
        self.bail = bail
        self.timer = timer

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShellState) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"ShellState({vars(self)!r})"


class ShellExit(Exception):
    """``.exit``/``.quit``: stop reading input; ``code`` None means "by errors"."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


Handler = Callable[["Shell", list[str]], int]


def split_arguments(line: str) -> list[str]:
    """Split a dot-command line as the SQLite shell does.

    Words are separated by whitespace; '...' and "..." group words.  Backslash
    escapes are resolved in plain and double-quoted words, not in single-quoted
    ones (so ``.separator \t`` is a tab and ``.separator '\t'`` is not).
    """
    args: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            break
        quote = line[i]
        if quote in "'\"":
            i += 1
            start = i
            while i < n and line[i] != quote:
                if quote == '"' and line[i] == "\\" and i + 1 < n:
                    i += 1
                i += 1
            word = line[start:i]
            i += 1
            args.append(resolve_backslashes(word) if quote == '"' else word)
        else:
            start = i
            while i < n and not line[i].isspace():
                i += 1
            args.append(resolve_backslashes(line[start:i]))
    return args


_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", "\\": "\\",
            '"': '"', "'": "'"}


def resolve_backslashes(text: str) -> str:
    """C escapes (``\\t``, ``\\n``, octal ``\\NNN``) as ``.separator '\\t'`` needs."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in "01234567":
                j = i + 1
                while j < len(text) and j < i + 4 and text[j] in "01234567":
                    j += 1
                out.append(chr(int(text[i + 1 : j], 8)))
                i = j
                continue
        out.append(ch)
        i += 1
    return "".join(out)


class NotBoolean(ValueError):
    pass


def boolean_value(text: str) -> bool:
    """SQLite's ``booleanValue``: on/yes/true, off/no/false or an integer."""
    lowered = text.lower()
    if lowered in ("on", "yes", "true"):
        return True
    if lowered in ("off", "no", "false"):
        return False
    try:
        return int(text, 0) != 0
    except ValueError:
        raise NotBoolean(text) from None


def _unknown(shell: Shell, name: str) -> int:
    shell.error(f'unknown command or invalid arguments:  "{name}". Enter ".help" for help')
    return 1


# --- handlers -----------------------------------------------------------------


def _set_bool(attribute: str) -> Handler:
    def handler(shell: Shell, args: list[str]) -> int:
        if len(args) != 1:
            return _unknown(shell, attribute)
        try:
            value = boolean_value(args[0])
        except NotBoolean:
            # The SQLite shell warns and treats the word as "off".
            shell.write_err(f'ERROR: Not a boolean value: "{args[0]}". Assuming "no".\n')
            value = False
        setattr(shell.state, attribute, value)
        return 0

    return handler


def cmd_all(shell: Shell, args: list[str]) -> int:
    if len(args) != 1:
        shell.error("Usage: .all TABLE")
        return 1
    name = args[0].replace('"', '""')
    return 0 if shell.run_sql(f'SELECT * FROM "{name}";') else 1


def cmd_exit(shell: Shell, args: list[str]) -> int:
    if len(args) > 1:
        return _unknown(shell, "exit")
    if args:
        try:
            code = int(args[0], 10)
        except ValueError:
            shell.error(f"invalid exit code: {args[0]}")
            return 1
        raise ShellExit(code)
    raise ShellExit(None)


def cmd_quit(shell: Shell, args: list[str]) -> int:
    raise ShellExit(None)


def cmd_features(shell: Shell, args: list[str]) -> int:
    # osquery lists its feature switches: every boolean disable_*/enable_* flag.
    lines = []
    for flag, value in shell.flags.items():
        if flag.type == "bool" and flag.name.startswith(("disable_", "enable_")):
            lines.append(f"{flag.name}: {'true' if value else 'false'}\n")
    shell.write("".join(lines))
    return 0


HELP_TEXT = """\
Welcome to the hostql shell. Please explore your OS!
You are connected to a transient 'in-memory' virtual database.

.all [TABLE]     Select all from a table
.bail ON|OFF     Stop after hitting an error
.echo ON|OFF     Turn command echo on or off
.exit [CODE]     Exit this program (with CODE)
.features        List osquery's features and their statuses
.headers ON|OFF  Turn display of headers on or off
.help            Show this message
.mode MODE       Set output mode where MODE is one of:
                   csv      Comma-separated values
                   column   Left-aligned columns see .width
                   line     One value per line
                   list     Values delimited by .separator string
                   pretty   Pretty printed SQL results (default)
.nullvalue STR   Use STRING in place of NULL values
.print STR...    Print literal STRING
.quit            Exit this program
.schema [TABLE]  Show the CREATE statements
.separator STR   Change separator used by output mode
.socket          Show the local osquery extensions socket path
.show            Show the current values for various settings
.summary         Alias for the show meta command
.tables [TABLE]  List names of tables
.types [SQL]     Show result of getQueryColumns for the given query
.width [NUM1]+   Set column widths for "column" mode
.timer ON|OFF    Turn the CPU timer measurement on or off
"""


def cmd_help(shell: Shell, args: list[str]) -> int:
    shell.write(HELP_TEXT)
    return 0


def cmd_mode(shell: Shell, args: list[str]) -> int:
    if len(args) != 1:
        return _unknown(shell, "mode")
    word = args[0].lower()
    # The SQLite shell accepts abbreviations ("col", "li") as long as they are unique.
    matches = [m for m in MODES if m.startswith(word)] if word else []
    if word in MODES:
        matches = [word]
    if len(matches) != 1:
        shell.error("mode should be one of: column csv line list pretty")
        return 1
    mode = matches[0]
    shell.state.mode = mode
    if mode == "csv":
        shell.state.separator = ","
    elif mode == "list":
        shell.state.separator = "|"
    return 0


def cmd_nullvalue(shell: Shell, args: list[str]) -> int:
    if len(args) != 1:
        return _unknown(shell, "nullvalue")
    shell.state.nullvalue = args[0]
    return 0


def cmd_print(shell: Shell, args: list[str]) -> int:
    shell.write(" ".join(args) + "\n")
    return 0


def schema_statement(shell: Shell, name: str) -> str:
    """osqueryi's ``.schema`` line: the table name unquoted, then ``;``."""
    from hostql.sql.vtable import table_schema_sql

    conn = shell.connection
    text = table_schema_sql(conn.tables[name], conn.platform)
    quoted = "`" + name.replace("`", "``") + "`"
    prefix = "CREATE TABLE " + quoted
    if text.startswith(prefix):
        text = "CREATE TABLE " + name + text[len(prefix):]
    return text + ";"


def cmd_schema(shell: Shell, args: list[str]) -> int:
    if len(args) > 1:
        return _unknown(shell, "schema")
    prefix = args[0] if args else ""
    names = [n for n in sorted(shell.connection.tables) if n.startswith(prefix)]
    shell.write("".join(schema_statement(shell, n) + "\n" for n in names))
    return 0


def cmd_separator(shell: Shell, args: list[str]) -> int:
    if len(args) != 1:
        return _unknown(shell, "separator")
    shell.state.separator = args[0]
    return 0


def cmd_socket(shell: Shell, args: list[str]) -> int:
    shell.write(f"{shell.flags.get('extensions_socket')}\n")
    return 0


def _c_string(text: str) -> str:
    # The SQLite shell shows strings C-quoted so a tab separator is visible.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
    escaped = escaped.replace("\r", "\\r")
    return f'"{escaped}"'


def cmd_show(shell: Shell, args: list[str]) -> int:
    import hostql

    flags = shell.flags
    state = shell.state
    lines = [
        f"hostql {hostql.__version__} (osquery {hostql.OSQUERY_VERSION})\n",
        f"using SQLite {_sqlite_version()}\n",
        "\nGeneral settings:\n",
        f"{'Executable':>13}: {sys.argv[0]}\n",
        f"{'Config':>13}: {flags.get('config_plugin')}\n",
        f"{'Logger':>13}: {flags.get('logger_plugin')}\n",
        f"{'Distributed':>13}: {'disabled' if flags.get('disable_distributed') else 'enabled'}\n",
        f"{'Database':>13}: ephemeral\n",
        f"{'Extensions':>13}: {'disabled' if flags.get('disable_extensions') else 'core'}\n",
        f"{'Socket':>13}: {flags.get('extensions_socket')}\n",
        "\nShell settings:\n",
        f"{'echo':>13}: {'on' if state.echo else 'off'}\n",
        f"{'headers':>13}: {'on' if state.header else 'off'}\n",
        f"{'mode':>13}: {state.mode}\n",
        f"{'nullvalue':>13}: {_c_string(state.nullvalue)}\n",
        f"{'output':>13}: stdout\n",
        f"{'separator':>13}: {_c_string(state.separator)}\n",
        f"{'width':>13}: {''.join(f'{w} ' for w in state.widths)}\n",
        "\nNon-default flags/options:\n",
    ]
    from hostql.agent.flags import format_value

    for flag, value in flags.items():
        if not flags.is_default(flag.name):
            lines.append(f"  {flag.name}: {format_value(value)}\n")
    shell.write("".join(lines))
    return 0


def cmd_tables(shell: Shell, args: list[str]) -> int:
    if len(args) > 1:
        return _unknown(shell, "tables")
    prefix = args[0] if args else ""
    names = sorted(n for n in shell.connection.tables if n.startswith(prefix))
    shell.write("".join(f"  => {n}\n" for n in names))
    return 0


def cmd_types(shell: Shell, args: list[str]) -> int:
    if not args:
        return _unknown(shell, "types")
    sql = " ".join(args)
    try:
        columns = shell.query_columns(sql)
    except Exception as exc:  # QueryError, imported lazily with the connection
        shell.error(str(exc))
        return 1
    shell.print_result(("name", "type"), columns)
    return 0


def cmd_version(shell: Shell, args: list[str]) -> int:
    import hostql

    shell.write(f"hostql {hostql.__version__} (osquery {hostql.OSQUERY_VERSION})\n"
                f"using SQLite {_sqlite_version()}\n")
    return 0


def cmd_width(shell: Shell, args: list[str]) -> int:
    widths = []
    for arg in args:
        try:
            widths.append(int(arg, 10))
        except ValueError:
            shell.error(f"invalid width: {arg}")
            return 1
    shell.state.widths = widths
    return 0


def _sqlite_version() -> str:
    import apsw

    return str(apsw.sqlite_lib_version())


_headers = _set_bool("header")

COMMANDS: dict[str, Handler] = {
    "all": cmd_all,
    "bail": _set_bool("bail"),
    "echo": _set_bool("echo"),
    "exit": cmd_exit,
    "features": cmd_features,
    "header": _headers,
    "headers": _headers,
    "help": cmd_help,
    "list": cmd_tables,
    "mode": cmd_mode,
    "nullvalue": cmd_nullvalue,
    "print": cmd_print,
    "quit": cmd_quit,
    "schema": cmd_schema,
    "separator": cmd_separator,
    "show": cmd_show,
    "socket": cmd_socket,
    "summary": cmd_show,
    "tables": cmd_tables,
    "timer": _set_bool("timer"),
    "types": cmd_types,
    "version": cmd_version,
    "width": cmd_width,
}

# Commands that take a table name, for completion.
TABLE_ARGUMENT = frozenset({"all", "schema", "tables", "list"})


def lookup(name: str) -> Handler | None:
    """The handler for ``name`` or a unique prefix of a command's name."""
    if name in COMMANDS:
        return COMMANDS[name]
    matches = {COMMANDS[c] for c in COMMANDS if c.startswith(name)} if name else set()
    if len(matches) == 1:
        return matches.pop()
    return None


def run(shell: Shell, line: str) -> int:
    """Run one dot-command line (with its leading dot); 0 or 1 for failure."""
    words = split_arguments(line.strip()[1:])
    if not words:
        return _unknown(shell, "")
    name, args = words[0], words[1:]
    # .types takes raw SQL: keep its quoting rather than the split words.
    if name == "types" or (lookup(name) is cmd_types):
        rest = line.strip()[1:].lstrip()[len(name):].strip()
        args = [rest] if rest else []
    handler = lookup(name)
    if handler is None:
        return _unknown(shell, name)
    return handler(shell, args)


def timer_line(real: float, user: float, system: float) -> str:
    """The SQLite shell's ``.timer on`` report for one statement."""
    return f"Run Time: real {real:.3f} user {user:f} sys {system:f}\n"


def cpu_times() -> tuple[float, float, float]:
    """(wall, user, system) seconds, for ``.timer``."""
    import os

    t = os.times()
    return time.perf_counter(), t.user, t.system
