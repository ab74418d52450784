"""Every dot-command, run through a Shell over test-only tables."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from hostql.agent.flags import FlagValues
from hostql.shell.dotcommands import ShellExit, boolean_value, resolve_backslashes, split_arguments
from hostql.shell.main import Shell
from hostql.sql.context import QueryContext
from hostql.tables.spec import INTEGER, TEXT, Column, TableSpec, table

PEOPLE = [(1, "ada", "first"), (2, "grace", None), (3, "linus", "kernel")]


def people_rows(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    yield from PEOPLE


def pets_rows(ctx: QueryContext) -> Iterator[dict[str, Any]]:
    for owner in ctx.equals("owner"):
        yield {"owner": owner, "pet": f"pet of {owner}"}


def specs() -> dict[str, TableSpec]:
    people = table(
        "people",
        "Test people.",
        [Column("id", INTEGER, index=True), Column("name", TEXT), Column("note", TEXT, hidden=True)],
        portable=f"{__name__}:people_rows",
    )
    pets = table(
        "pets",
        "Test pets.",
        [Column("owner", TEXT, required=True), Column("pet", TEXT)],
        portable=f"{__name__}:pets_rows",
    )
    plain = table("people_plain", "No key.", [Column("x", INTEGER)], portable=f"{__name__}:people_rows")
    return {"people": people, "people_plain": plain, "pets": pets}


class Session:
    """A shell writing to strings."""

    def __init__(self, flags: FlagValues | None = None) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.shell = Shell(flags or FlagValues(), out=self.out, err=self.err, tables=specs())

    def run(self, *lines: str) -> str:
        """Run script lines; return what was printed since the last call."""
        self.out.seek(0)
        self.out.truncate()
        self.shell.process_lines(lines)
        return self.out.getvalue()

    def errors(self) -> str:
        return self.err.getvalue()


@pytest.fixture
def s() -> Iterator[Session]:
    session = Session()
    yield session
    session.shell.close()


def test_all(s: Session) -> None:
    assert s.run(".all people") == (
        "+----+-------+\n"
        "| id | name  |\n"
        "+----+-------+\n"
        "| 1  | ada   |\n"
        "| 2  | grace |\n"
        "| 3  | linus |\n"
        "+----+-------+\n"
    )


def test_all_without_table_fails(s: Session) -> None:
    assert s.run(".all") == ""
    assert "Usage: .all TABLE" in s.errors()
    assert s.shell.errors == 1


def test_all_of_table_with_required_column_fails(s: Session) -> None:
    s.run(".all pets")
    assert "Table pets was queried without a required column in the WHERE clause" in s.errors()


def test_bail_stops_script_at_first_error(s: Session) -> None:
    out = s.run(".bail on", ".mode list", "SELECT * FROM nope;", "SELECT 1 AS x;")
    assert out == ""
    assert s.errors() == "Error: near line 3: no such table: nope\n"
    s.err.truncate(0)
    out = s.run(".bail off", "SELECT * FROM nope;", "SELECT 1 AS x;")
    assert out == "x\n1\n"


def test_echo(s: Session) -> None:
    out = s.run(".echo on", ".mode list", "SELECT 1 AS x;")
    assert out == ".mode list\nSELECT 1 AS x;\nx\n1\n"


def test_exit_and_quit(s: Session) -> None:
    with pytest.raises(ShellExit) as stop:
        s.run(".exit 3", "SELECT 1;")
    assert stop.value.code == 3
    assert s.out.getvalue() == ""
    with pytest.raises(ShellExit) as stop:
        s.run(".exit")
    assert stop.value.code is None
    with pytest.raises(ShellExit) as stop:
        s.run(".quit")
    assert stop.value.code is None


def test_exit_with_bad_code(s: Session) -> None:
    s.run(".exit x")
    assert s.errors() == "Error: invalid exit code: x\n"


def test_features() -> None:
    session = Session(FlagValues({"disable_events": True}))
    out = session.run(".features")
    lines = out.splitlines()
    assert "disable_events: true" in lines
    assert "enable_foreign: false" in lines
    assert all(line.split(":")[0].startswith(("disable_", "enable_")) for line in lines)


@pytest.mark.parametrize("command", [".headers", ".header"])
def test_headers(s: Session, command: str) -> None:
    assert s.run(".mode list", f"{command} off", "SELECT 1 AS x;") == "1\n"
    assert s.run(f"{command} ON", "SELECT 1 AS x;") == "x\n1\n"


def test_headers_not_boolean(s: Session) -> None:
    s.run(".headers maybe")
    assert s.errors() == 'ERROR: Not a boolean value: "maybe". Assuming "no".\n'
    assert s.shell.state.header is False


def test_help(s: Session) -> None:
    out = s.run(".help")
    for command in (".all", ".mode MODE", ".schema", ".tables", ".exit", ".timer"):
        assert command in out


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("line", "    x = 1\n    y = a\n"),
        ("list", "x|y\n1|a\n"),
        ("csv", "x,y\n1,a\n"),
        ("column", "x           y         \n----------  ----------\n1           a         \n"),
        ("pretty", "+---+---+\n| x | y |\n+---+---+\n| 1 | a |\n+---+---+\n"),
    ],
)
def test_mode(s: Session, mode: str, expected: str) -> None:
    assert s.run(f".mode {mode}", "SELECT 1 AS x, 'a' AS y;") == expected
    assert s.shell.state.mode == mode


def test_mode_json_is_an_error(s: Session) -> None:
    s.run(".mode json")
    assert s.errors() == "Error: mode should be one of: column csv line list pretty\n"
    assert s.shell.state.mode == "pretty"
    assert s.shell.errors == 1


def test_mode_abbreviation_and_missing_argument(s: Session) -> None:
    s.run(".mode col")
    assert s.shell.state.mode == "column"
    s.run(".mode")
    assert s.errors() == 'Error: unknown command or invalid arguments:  "mode". Enter ".help" for help\n'


def test_nullvalue(s: Session) -> None:
    assert s.run(".mode list", ".nullvalue NULL", "SELECT id, note FROM people WHERE id = 2;") == (
        "id|note\n2|NULL\n"
    )


def test_print(s: Session) -> None:
    assert s.run(".print hello   world", '.print "quoted  words"') == "hello world\nquoted  words\n"


def test_schema_one_table(s: Session) -> None:
    assert s.run(".schema pets") == "CREATE TABLE pets(`owner` TEXT, `pet` TEXT);\n"


def test_schema_is_by_prefix(s: Session) -> None:
    # HIDDEN, PRIMARY KEY and WITHOUT ROWID come from the column options.
    assert s.run(".schema people") == (
        "CREATE TABLE people(`id` INTEGER, `name` TEXT, `note` TEXT HIDDEN, PRIMARY KEY (`id`)) WITHOUT ROWID;\n"
        "CREATE TABLE people_plain(`x` INTEGER);\n"
    )
    every = s.run(".schema").splitlines()
    assert [line.split("(")[0] for line in every] == [
        "CREATE TABLE people", "CREATE TABLE people_plain", "CREATE TABLE pets"
    ]
    assert s.run(".schema zzz") == ""


def test_separator(s: Session) -> None:
    assert s.run(".mode list", ".separator ;", "SELECT 1 AS a, 2 AS b;") == "a;b\n1;2\n"
    assert s.run(".separator '\\t'", "SELECT 1 AS a, 2 AS b;") == "a\\tb\n1\\t2\n"
    assert s.run('.separator "\\t"', "SELECT 1 AS a, 2 AS b;") == "a\tb\n1\t2\n"
    assert s.run(".separator \\n", "SELECT 1 AS a, 2 AS b;") == "a\nb\n1\n2\n"


@pytest.mark.parametrize("command", [".show", ".summary"])
def test_show(s: Session, command: str) -> None:
    s.run(".mode csv", ".nullvalue N", ".width 4 5")
    out = s.run(command)
    assert "\nShell settings:\n" in out
    assert "         mode: csv\n" in out
    assert "    nullvalue: \"N\"\n" in out
    assert "    separator: \",\"\n" in out
    assert "        width: 4 5 \n" in out
    assert "      headers: on\n" in out


def test_show_lists_non_default_flags() -> None:
    session = Session(FlagValues({"verbose": True}))
    out = session.run(".show")
    assert out.endswith("Non-default flags/options:\n  verbose: true\n")


@pytest.mark.parametrize("command", [".tables", ".list"])
def test_tables(s: Session, command: str) -> None:
    assert s.run(command) == "  => people\n  => people_plain\n  => pets\n"
    assert s.run(f"{command} pe") == "  => people\n  => people_plain\n  => pets\n"
    assert s.run(f"{command} pet") == "  => pets\n"
    assert s.run(f"{command} zzz") == ""


def test_timer(s: Session) -> None:
    out = s.run(".timer on", ".mode list", "SELECT 1 AS x;")
    lines = out.splitlines()
    assert lines[:2] == ["x", "1"]
    assert lines[2].startswith("Run Time: real ")
    assert " user " in lines[2] and " sys " in lines[2]
    assert s.run(".timer off", "SELECT 1 AS x;") == "x\n1\n"


def test_types(s: Session) -> None:
    out = s.run(".mode list", ".types SELECT id, name, 1 AS one, 'a' AS t, NULL AS n FROM people")
    assert out == "name|type\nid|INTEGER\nname|TEXT\none|INTEGER\nt|TEXT\nn|UNKNOWN\n"


def test_types_error(s: Session) -> None:
    s.run(".types SELECT * FROM nope")
    assert s.errors() == "Error: no such table: nope\n"


def test_version(s: Session) -> None:
    import apsw

    import hostql

    out = s.run(".version")
    assert out == (f"hostql {hostql.__version__} (osquery {hostql.OSQUERY_VERSION})\n"
                   f"using SQLite {apsw.sqlite_lib_version()}\n")


def test_width(s: Session) -> None:
    out = s.run(".mode column", ".width 2 -6", "SELECT 'abc' AS a, 'xy' AS b;")
    assert out == "a        b\n--  ------\nab      xy\n"
    assert s.shell.state.widths == [2, -6]
    s.run(".width x")
    assert s.errors() == "Error: invalid width: x\n"


def test_unknown_command(s: Session) -> None:
    s.run(".frobnicate")
    assert s.errors() == 'Error: unknown command or invalid arguments:  "frobnicate". Enter ".help" for help\n'
    assert s.shell.errors == 1


def test_unique_prefix(s: Session) -> None:
    assert s.run(".tab pet") == "  => pets\n"


def test_socket(s: Session) -> None:
    assert s.run(".socket") == "/var/osquery/osquery.em\n"


def test_script_errors_name_the_line(s: Session) -> None:
    s.run(".mode list", "", "SELECT", "  1 AS x;", "SELECT * FROM nope;")
    assert s.errors() == "Error: near line 5: no such table: nope\n"


def test_unterminated_statement_at_end_runs(s: Session) -> None:
    assert s.run(".mode list", "SELECT 7 AS x") == "x\n7\n"


def test_statement_without_columns_prints_nothing(s: Session) -> None:
    assert s.run("CREATE TEMP VIEW v AS SELECT name FROM people;", ".mode list", "SELECT * FROM v;") == (
        "name\nada\ngrace\nlinus\n"
    )


def test_split_arguments() -> None:
    assert split_arguments("mode  line") == ["mode", "line"]
    assert split_arguments("print 'a \\t b' \"c\\td\" e\\n") == ["print", "a \\t b", "c\td", "e\n"]
    assert resolve_backslashes("a\\tb\\n\\101\\\\") == "a\tb\nA\\"
    assert boolean_value("ON") and boolean_value("1") and not boolean_value("no")
