"""Exact output of every shell output format."""

from __future__ import annotations

import json

import pytest

from hostql.shell import printer
from hostql.shell.printer import (
    float_text,
    render,
    render_column,
    render_csv,
    render_json,
    render_json_pretty,
    render_line,
    render_list,
    render_pretty,
    to_text,
)

COLUMNS = ("pid", "name", "path")
ROWS = [(1, "init", "/sbin/init"), (42, "sshd", None)]


# --- pretty -------------------------------------------------------------------


def test_pretty_layout() -> None:
    assert render_pretty(COLUMNS, ROWS) == (
        "+-----+------+------------+\n"
        "| pid | name | path       |\n"
        "+-----+------+------------+\n"
        "| 1   | init | /sbin/init |\n"
        "| 42  | sshd |            |\n"
        "+-----+------+------------+\n"
    )


def test_pretty_counts_characters_not_bytes() -> None:
    # "héllo" is 6 bytes but 5 characters; "名前" is 2 characters.
    out = render_pretty(("名前", "v"), [("héllo", None)], nullvalue="NULL")
    assert out == (
        "+-------+------+\n"
        "| 名前    | v    |\n"
        "+-------+------+\n"
        "| héllo | NULL |\n"
        "+-------+------+\n"
    )


def test_pretty_wide_value_sets_width() -> None:
    wide = "x" * 40
    out = render_pretty(("a",), [(wide,), ("y",)])
    lines = out.splitlines()
    assert lines[0] == "+" + "-" * 42 + "+"
    assert lines[3] == f"| {wide} |"
    assert lines[4] == "| y" + " " * 40 + "|"


def test_pretty_empty_prints_nothing() -> None:
    assert render_pretty(COLUMNS, []) == ""


# --- JSON ---------------------------------------------------------------------------


def test_json_compact_rows_sorted_keys_string_values() -> None:
    out = render_json(("pid", "name", "avg"), [(1, "init", 1.5), (2, None, None)])
    assert out == (
        "[\n"
        '  {"avg":"1.5","name":"init","pid":"1"},\n'
        '  {"avg":"","name":"","pid":"2"}\n'
        "]\n"
    )
    parsed = json.loads(out)
    assert parsed == [{"avg": "1.5", "name": "init", "pid": "1"}, {"avg": "", "name": "", "pid": "2"}]


def test_json_empty_result() -> None:
    assert render_json(("a",), []) == "[\n\n]\n"


def test_json_nullvalue_and_escapes() -> None:
    out = render_json(("s", "n"), [('a"b\\c\n\t\x01/é', None)], nullvalue="null")
    assert out == '[\n  {"n":"null","s":"a\\"b\\\\c\\n\\t\\u0001/é"}\n]\n'
    assert json.loads(out) == [{"n": "null", "s": 'a"b\\c\n\t\x01/é'}]


def test_json_repeated_column_keeps_last() -> None:
    assert render_json(("a", "a"), [(1, 2)]) == '[\n  {"a":"2"}\n]\n'


def test_json_pretty() -> None:
    out = render_json_pretty(("pid", "name"), [(1, "init"), (2, None)])
    assert out == (
        "[\n"
        "    {\n"
        '        "name": "init",\n'
        '        "pid": "1"\n'
        "    },\n"
        "    {\n"
        '        "name": "",\n'
        '        "pid": "2"\n'
        "    }\n"
        "]\n"
    )
    assert json.loads(out) == [{"name": "init", "pid": "1"}, {"name": "", "pid": "2"}]


def test_json_pretty_empty() -> None:
    assert render_json_pretty(("a",), []) == "[]\n"


# --- line ---------------------------------------------------------------------------


def test_line_mode() -> None:
    out = render_line(("a", "longername"), [(1, "x"), (None, 2.5)], nullvalue="-")
    assert out == (
        "         a = 1\n"
        "longername = x\n"
        "\n"
        "         a = -\n"
        "longername = 2.5\n"
    )


def test_line_mode_minimum_width_five() -> None:
    assert render_line(("a", "bb"), [(1, 2)]) == "    a = 1\n   bb = 2\n"


def test_line_mode_empty() -> None:
    assert render_line(("a",), []) == ""


# --- list ---------------------------------------------------------------------------


def test_list_mode() -> None:
    assert render_list(COLUMNS, ROWS) == "pid|name|path\n1|init|/sbin/init\n42|sshd|\n"


def test_list_mode_no_header_and_separator() -> None:
    out = render_list(COLUMNS, ROWS, "NULL", header=False, separator="\t")
    assert out == "1\tinit\t/sbin/init\n42\tsshd\tNULL\n"


def test_list_mode_empty_has_no_header() -> None:
    assert render_list(COLUMNS, []) == ""


# --- csv ----------------------------------------------------------------------------


def test_csv_quoting() -> None:
    rows = [("plain", "a,b", 'say "hi"', "two\nlines", "", None, "café", 3)]
    out = render_csv(("c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"), rows)
    assert out == (
        "c1,c2,c3,c4,c5,c6,c7,c8\n"
        'plain,"a,b","say ""hi""","two\nlines","",,"café",3\n'
    )


def test_csv_header_quoting_and_no_header() -> None:
    assert render_csv(("a b", "c,d"), [(1, 2)]) == 'a b,"c,d"\n1,2\n'
    assert render_csv(("a",), [(1,)], header=False) == "1\n"


def test_csv_custom_separator_and_nullvalue() -> None:
    out = render_csv(("a", "b"), [("x;y", None)], "NULL", separator=";")
    assert out == 'a;b\n"x;y";NULL\n'


def test_csv_empty() -> None:
    assert render_csv(("a",), []) == ""


# --- column --------------------------------------------------------------------------


def test_column_mode() -> None:
    out = render_column(("id", "description"), [(1, "short"), (2, "a much longer value")])
    assert out == (
        "id          description\n"
        "----------  -----------\n"
        "1           short      \n"
        "2           a much long\n"
    )


def test_column_mode_widths_and_right_alignment() -> None:
    out = render_column(("a", "b"), [(1, "xyz")], widths=(3, -5))
    assert out == "a        b\n---  -----\n1      xyz\n"


def test_column_mode_no_header() -> None:
    assert render_column(("a",), [("v",)], header=False) == "v         \n"


# --- values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (1e20, "1.0e+20"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float("inf"), "Inf"),
        (-2.5, "-2.5"),
    ],
)
def test_float_text_is_sqlites(value: float, text: str) -> None:
    assert float_text(value) == text


def test_to_text() -> None:
    assert to_text(None, "N") == "N"
    assert to_text(7, "") == "7"
    assert to_text(b"ab\xff", "") == "ab\ufffd"
    assert to_text(float("nan"), "N") == "N"


def test_render_dispatch() -> None:
    assert render("list", ("a",), [(1,)]) == "a\n1\n"
    assert render("json", ("a",), [(1,)]) == '[\n  {"a":"1"}\n]\n'
    with pytest.raises(ValueError, match="unknown output mode"):
        render("xml", ("a",), [])
    assert "json" not in printer.MODES
