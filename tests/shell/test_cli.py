"""The real ``hostql`` console script, run in a subprocess for each flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HOSTQL = str(Path(sys.executable).parent / "hostql")


def hostql(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # A string on stdin makes it a pipe; otherwise an empty file keeps the
    # shell from ever seeing a terminal.
    return subprocess.run([HOSTQL, *args], input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, HOSTQL_HOME="/nonexistent"))


# --- output flags ----------------------------------------------------------------


def test_json() -> None:
    r = hostql("shell", "--json", "SELECT 1 AS one, 'x' AS name, NULL AS n UNION ALL SELECT 2, 'y', 3")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '[\n  {"n":"","name":"x","one":"1"},\n  {"n":"3","name":"y","one":"2"}\n]\n'
    assert json.loads(r.stdout) == [{"n": "", "name": "x", "one": "1"}, {"n": "3", "name": "y", "one": "2"}]
    assert r.stderr == ""


def test_json_table_rows() -> None:
    r = hostql("shell", "--json", "SELECT * FROM load_average ORDER BY period")
    rows = json.loads(r.stdout)
    assert [row["period"] for row in rows] == ["15m", "1m", "5m"]
    assert all(set(row) == {"period", "average"} and isinstance(row["average"], str) for row in rows)


def test_json_empty() -> None:
    assert hostql("shell", "--json", "SELECT 1 WHERE 0").stdout == "[\n\n]\n"


def test_json_pretty() -> None:
    r = hostql("shell", "--json_pretty", "SELECT 1 AS b, 'é' AS a")
    assert r.stdout == '[\n    {\n        "a": "é",\n        "b": "1"\n    }\n]\n'


def test_pretty_is_default() -> None:
    r = hostql("shell", "SELECT 1 AS a, 'two' AS b")
    assert r.stdout == "+---+-----+\n| a | b   |\n+---+-----+\n| 1 | two |\n+---+-----+\n"


def test_csv_has_header_row() -> None:
    r = hostql("shell", "--csv", "SELECT 'a,b' AS first, 2 AS second")
    assert r.stdout == 'first,second\n"a,b",2\n'


@pytest.mark.parametrize("flag", ["--header=false", "--noheader", "--header=0"])
def test_header_off(flag: str) -> None:
    assert hostql("shell", "--csv", flag, "SELECT 1 AS a").stdout == "1\n"


def test_header_on_forms() -> None:
    assert hostql("shell", "--list", "--header", "SELECT 1 AS a").stdout == "a\n1\n"
    assert hostql("shell", "--list", "--header=true", "SELECT 1 AS a").stdout == "a\n1\n"


def test_line() -> None:
    assert hostql("shell", "--line", "SELECT 1 AS a, 2 AS bb").stdout == "    a = 1\n   bb = 2\n"


def test_list_separator_and_nullvalue_forms() -> None:
    r = hostql("shell", "--list", "--separator", ";", "--nullvalue=NULL", "SELECT 1 AS a, NULL AS b")
    assert r.stdout == "a;b\n1;NULL\n"
    r = hostql("shell", "--list", "--separator=,", "--nullvalue", "-", "SELECT 1 AS a, NULL AS b")
    assert r.stdout == "a,b\n1,-\n"


def test_flagfile(tmp_path: Path) -> None:
    path = tmp_path / "shell.flags"
    path.write_text("--csv\n--nullvalue=NULL\n")
    assert hostql("shell", "--flagfile", str(path), "SELECT NULL AS a").stdout == "a\nNULL\n"


def test_flag_value_that_looks_like_an_option() -> None:
    assert hostql("shell", "--list", "--nullvalue", "--help", "SELECT NULL AS a").stdout == "a\n--help\n"


def test_single_dash_flag_form() -> None:
    assert hostql("shell", "-json", "SELECT 1 AS a").stdout == '[\n  {"a":"1"}\n]\n'


def test_other_osquery_flags_reach_osquery_flags() -> None:
    r = hostql("shell", "--config_path", "/tmp/x.conf", "--verbose", "--json",
               "SELECT name, value FROM osquery_flags WHERE name IN ('config_path', 'verbose', 'json')"
               " ORDER BY name")
    assert json.loads(r.stdout) == [
        {"name": "config_path", "value": "/tmp/x.conf"},
        {"name": "json", "value": "true"},
        {"name": "verbose", "value": "true"},
    ]


# --- inputs and exit codes ---------------------------------------------------------


def test_query_error_exit_code() -> None:
    r = hostql("shell", "SELEC 1")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == 'Error: near "SELEC": syntax error\n'


def test_query_flag_both_forms() -> None:
    assert hostql("shell", "--csv", "--query", "SELECT 3 AS x").stdout == "x\n3\n"
    assert hostql("shell", "--csv", "--query=SELECT 4 AS x").stdout == "x\n4\n"


def test_stdin_statements() -> None:
    r = hostql("shell", "--csv", stdin="SELECT 1 AS a;\nSELECT\n  2 AS b;\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, "a\n1\nb\n2\n", "")


def test_stdin_error_sets_exit_code_and_continues() -> None:
    r = hostql("shell", "--csv", stdin="SELECT 1 AS a;\nSELECT * FROM nope;\nSELECT 2 AS b;\n")
    assert r.returncode == 1
    assert r.stdout == "a\n1\nb\n2\n"
    assert r.stderr == "Error: near line 2: no such table: nope\n"


def test_stdin_dot_commands_and_exit_code() -> None:
    r = hostql("shell", stdin=".mode list\nSELECT 5 AS x;\n.exit 5\nSELECT 6;\n")
    assert (r.returncode, r.stdout) == (5, "x\n5\n")
    assert hostql("shell", stdin=".quit\n").returncode == 0


def test_query_file(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("SELECT 1 AS a;\nSELECT 2 AS a;\n")
    r = hostql("shell", "--csv", "--query_file", str(path))
    assert (r.returncode, r.stdout) == (0, "a\n1\na\n2\n")
    assert hostql("shell", f"--query_file={path}", "--json").stdout == '[\n  {"a":"1"}\n]\n[\n  {"a":"2"}\n]\n'


def test_query_file_unreadable(tmp_path: Path) -> None:
    r = hostql("shell", "--query_file", str(tmp_path / "missing.sql"))
    assert r.returncode == 1
    assert r.stderr.startswith("Error: cannot read query file ")
    assert "No such file or directory" in r.stderr


def test_all_table_flag() -> None:
    r = hostql("shell", "-A", "load_average")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["|", "period", "|", "average", "|"]
    assert [line.split()[1] for line in lines[3:6]] == ["1m", "5m", "15m"]


def test_all_flag_with_json() -> None:
    rows = json.loads(hostql("shell", "--json", "-A", "load_average").stdout)
    assert {row["period"] for row in rows} == {"1m", "5m", "15m"}


def test_list_tables_flag() -> None:
    r = hostql("shell", "-L")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert "  => load_average" in lines
    assert all(line.startswith("  => ") for line in lines)
    assert lines == sorted(lines)


def test_positional_dot_command() -> None:
    r = hostql("shell", ".tables load_av")
    assert r.stdout == "  => load_average\n"


def test_unknown_flag() -> None:
    r = hostql("shell", "--no_such_flag=1", "SELECT 1")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == "Error: unknown flag --no_such_flag\n"


def test_bad_flag_value_and_missing_value() -> None:
    r = hostql("shell", "--json=maybe", "SELECT 1")
    assert (r.returncode, r.stderr) == (1, "Error: flag --json expects a boolean, got 'maybe'\n")
    r = hostql("shell", "--separator")
    assert (r.returncode, r.stderr) == (1, "Error: flag --separator needs a value\n")


def test_shell_help() -> None:
    r = hostql("shell", "--help")
    assert r.returncode == 0
    assert "Usage: hostql shell [OPTION]... [SQL STATEMENT]" in r.stdout
    for flag in ("--json", "--csv", "--header", "--query_file VALUE", "-A VALUE", "-L", "--config_path VALUE"):
        assert flag in r.stdout


# --- the top-level command --------------------------------------------------------


def test_top_level_help_and_version() -> None:
    r = hostql("--help")
    assert r.returncode == 0
    assert "shell" in r.stdout and "Usage: hostql" in r.stdout
    r = hostql("--version")
    assert r.returncode == 0 and r.stdout.startswith("hostql ")


def test_unknown_subcommand() -> None:
    r = hostql("frob")
    assert r.returncode == 2
    # Other parts of hostql add commands, so only the start is fixed.
    assert r.stderr.startswith("Error: no such command 'frob'. Commands: ")
    assert "shell" in r.stderr


def test_python_dash_m() -> None:
    r = subprocess.run([sys.executable, "-m", "hostql", "shell", "--csv", "SELECT 1 AS a"], capture_output=True,
                       text=True, timeout=60, input="")
    assert (r.returncode, r.stdout) == (0, "a\n1\n")


def test_broken_pipe_is_quiet() -> None:
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT x FROM c"
    with subprocess.Popen([HOSTQL, "shell", "--csv", sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"x\n"
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err


def test_output_file(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    r = hostql("shell", "--csv", f"--output={path}", "SELECT 1 AS a")
    assert (r.returncode, r.stdout) == (0, "")
    assert path.read_text() == "a\n1\n"
    assert hostql("shell", "--csv", "--output", "-", "SELECT 1 AS a").stdout == "a\n1\n"


def test_unimplemented_osqueryi_flags_are_refused() -> None:
    r = hostql("shell", "--planner", "SELECT 1")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "Error: flag --planner is not supported by hostql shell yet\n"
