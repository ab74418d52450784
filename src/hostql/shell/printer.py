"""Output formats of the shell, byte-for-byte as osqueryi prints them.

Every function takes column names and rows of SQLite values and returns the
text to write (including the final newline), so formats can be tested without
a terminal.  The modes come from two sources, which explains their quirks:

* ``pretty`` and the two JSON forms are osquery's own printer (``printer.cpp``);
  widths there count UTF-8 characters.
* ``line``, ``list``, ``csv`` and ``column`` are the SQLite shell osqueryi was
  forked from; their header, quoting and width rules are that shell's.
"""

from __future__ import annotations

from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Rows = Sequence[Sequence["Any"]]

MODES: tuple[str, ...] = ("column", "csv", "line", "list", "pretty")

_float_db: Any = None


def float_text(value: float) -> str | None:
    """SQLite's own REAL -> TEXT conversion (what ``sqlite3_column_text`` gives).

    SQLite's algorithm differs from Python's ``repr`` (``1e+20`` is ``1.0e+20``,
    ``1/3`` has 17 digits, infinity is ``Inf``), so SQLite is asked directly.
    NaN binds as NULL, as it does in SQLite, hence the ``None``.
    """
    global _float_db
    if _float_db is None:
        import apsw

        _float_db = apsw.Connection(":memory:")
    result: str | None = _float_db.execute("SELECT CAST(? AS TEXT)", (value,)).fetchone()[0]
    return result


def to_text(value: Any, nullvalue: str) -> str:
    """A SQLite value as the shell prints it."""
    if value is None:
        return nullvalue
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[no-any-return]
    if cls is int or cls is bool:
        return str(int(value))
    if cls is float:
        text = float_text(value)
        return nullvalue if text is None else text
    if isinstance(value, bytes | bytearray | memoryview):
        # osqueryi writes a BLOB's bytes as they are; undecodable bytes are
        # replaced so that output stays valid text.
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _texts(rows: Rows, nullvalue: str) -> list[list[str]]:
    return [[to_text(v, nullvalue) for v in row] for row in rows]


# --- osquery's printer ------------------------------------------------------


def render_pretty(columns: Sequence[str], rows: Rows, nullvalue: str = "") -> str:
    """The default box layout; an empty result prints nothing at all.

    osquery pads with ``std::string(width - utf8StrSize(value), ' ')``, so a
    width counts code points, not bytes; the header is always shown.
    """
    if not rows:
        return ""
    texts = _texts(rows, nullvalue)
    widths = [len(c) for c in columns]
    for row in texts:
        for i, text in enumerate(row):
            if len(text) > widths[i]:
                widths[i] = len(text)
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"

    def line(cells: Sequence[str]) -> str:
        return "|" + "|".join(" " + c + " " * (w - len(c) + 1) for c, w in zip(cells, widths)) + "|\n"

    out = [border, line(columns), border]
    out.extend(line(row) for row in texts)
    out.append(border)
    return "".join(out)


def _json_escape_table() -> dict[int, str]:
    # rapidjson's Writer: the two mandatory escapes, short forms for \b \f \n
    # \r \t, \u00XX (upper-case hex) for other control characters; everything
    # else, including non-ASCII and '/', is written as raw UTF-8.
    table = {c: f"\\u{c:04X}" for c in range(0x20)}
    table.update({0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})
    table[ord('"')] = '\\"'
    table[ord("\\")] = "\\\\"
    return table


_JSON_ESCAPES = _json_escape_table()


def json_string(text: str) -> str:
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def _json_rows(columns: Sequence[str], rows: Rows, nullvalue: str) -> list[list[tuple[str, str]]]:
    """Rows as sorted (key, text) pairs.

    osquery's ``Row`` is a ``std::map``: keys come out sorted and a repeated
    column name keeps the last value assigned to it.
    """
    result = []
    for row in rows:
        obj: dict[str, str] = {}
        for name, value in zip(columns, row):
            obj[name] = to_text(value, nullvalue)
        result.append(sorted(obj.items()))
    return result


def render_json(columns: Sequence[str], rows: Rows, nullvalue: str = "") -> str:
    """``--json``: a ``[`` line, one compact object per row, a ``]`` line.

    Objects are rapidjson ``Writer`` output, which puts no space after ``:`` or
    ``,`` (``{"name":"x","pid":"1"}``).  The rows are joined by ``,\\n`` and the
    array closes with ``\\n]``, so an empty result is ``[``, an empty line, ``]``.
    """
    objects = [
        "  {" + ",".join(json_string(k) + ":" + json_string(v) for k, v in pairs) + "}"
        for pairs in _json_rows(columns, rows, nullvalue)
    ]
    return "[\n" + ",\n".join(objects) + "\n]\n"


def render_json_pretty(columns: Sequence[str], rows: Rows, nullvalue: str = "") -> str:
    """``--json_pretty``: the array through rapidjson's ``PrettyWriter``.

    Four-space indentation, ``"key": "value"`` and an empty array as ``[]``.
    """
    pairs_list = _json_rows(columns, rows, nullvalue)
    if not pairs_list:
        return "[]\n"
    objects = []
    for pairs in pairs_list:
        if not pairs:
            objects.append("    {}")
            continue
        members = ",\n".join(f"        {json_string(k)}: {json_string(v)}" for k, v in pairs)
        objects.append("    {\n" + members + "\n    }")
    return "[\n" + ",\n".join(objects) + "\n]\n"


# --- the SQLite shell's modes ---------------------------------------------------


def render_line(columns: Sequence[str], rows: Rows, nullvalue: str = "") -> str:
    """One ``name = value`` line per column, a blank line between rows.

    Names are right-aligned to the longest (at least 5).  The SQLite shell
    measures names with ``strlen`` and pads with ``%*s``, i.e. in bytes, and so
    does this.
    """
    if not rows:
        return ""
    encoded = [len(c.encode("utf-8")) for c in columns]
    width = max([5, *encoded])
    labels = [" " * (width - n) + c for c, n in zip(columns, encoded)]
    blocks = []
    for row in rows:
        blocks.append("".join(f"{label} = {to_text(v, nullvalue)}\n" for label, v in zip(labels, row)))
    return "\n".join(blocks)


def render_list(columns: Sequence[str], rows: Rows, nullvalue: str = "", *, header: bool = True,
                separator: str = "|") -> str:
    """Values joined by the separator; the header line only when there are rows."""
    if not rows:
        return ""
    out = [separator.join(columns) + "\n"] if header else []
    out.extend(separator.join(row) + "\n" for row in _texts(rows, nullvalue))
    return "".join(out)


def _csv_needs_quote(text: str, separator: str) -> bool:
    # SQLite's needCsvQuote table marks bytes 0x00-0x1F, '"' and 0x7F-0xFF,
    # so any non-ASCII character forces quotes.  A string containing the
    # separator's first character is quoted too (for a one-character
    # separator; longer ones only when the value starts with the separator).
    # The loop never runs for "", so the empty string is quoted as well.
    if not text:
        return True
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code >= 0x7F or ch == '"':
            return True
    if not separator:
        return False
    if len(separator) == 1 or text.startswith(separator):
        return separator[0] in text
    return False


def csv_field(value: Any, nullvalue: str, separator: str) -> str:
    """One field as SQLite's ``output_csv`` writes it (NULL unquoted)."""
    if value is None:
        return nullvalue
    text = to_text(value, nullvalue)
    if _csv_needs_quote(text, separator):
        return '"' + text.replace('"', '""') + '"'
    return text


def render_csv(columns: Sequence[str], rows: Rows, nullvalue: str = "", *, header: bool = True,
               separator: str = ",") -> str:
    """Comma-separated values, ``\\n`` line ends, header only when there are rows."""
    if not rows:
        return ""
    out = []
    if header:
        out.append(separator.join(csv_field(c, nullvalue, separator) for c in columns) + "\n")
    for row in rows:
        out.append(separator.join(csv_field(v, nullvalue, separator) for v in row) + "\n")
    return "".join(out)


_COLUMN_DASHES = 93  # the length of the dash literal the SQLite shell slices


def _fit(text: str, width: int) -> str:
    # printf("%-*.*s") pads to and truncates at the width; a negative width
    # right-aligns.  Widths count characters here (C counts bytes, which would
    # cut UTF-8 sequences in half).
    if width < 0:
        width = -width
        return " " * (width - len(text[:width])) + text[:width]
    return text[:width] + " " * (width - len(text[:width]))


def render_column(columns: Sequence[str], rows: Rows, nullvalue: str = "", *, header: bool = True,
                  widths: Sequence[int] = ()) -> str:
    """Fixed-width columns, two spaces apart.

    A width set with ``.width`` is used as given; otherwise it is the longer of
    the name (at least 10) and the *first* row's value, and later values that
    are wider are cut, as the SQLite shell does.
    """
    if not rows:
        return ""
    texts = _texts(rows, nullvalue)
    actual = []
    for i, name in enumerate(columns):
        w = widths[i] if i < len(widths) else 0
        if w == 0:
            w = max(len(name), 10, len(texts[0][i]))
        actual.append(w)
    out = []
    if header:
        out.append("  ".join(_fit(name, w) for name, w in zip(columns, actual)) + "\n")
        dashes = ("-" * _COLUMN_DASHES)
        out.append("  ".join(_fit(dashes, abs(w)) for w in actual) + "\n")
    for row in texts:
        out.append("  ".join(_fit(text, w) for text, w in zip(row, actual)) + "\n")
    return "".join(out)


def render(mode: str, columns: Sequence[str], rows: Rows, *, nullvalue: str = "", header: bool = True,
           separator: str = "|", widths: Sequence[int] = ()) -> str:
    """Dispatch on the mode name (the shell modes plus ``json``/``json_pretty``)."""
    if mode == "pretty":
        return render_pretty(columns, rows, nullvalue)
    if mode == "json":
        return render_json(columns, rows, nullvalue)
    if mode == "json_pretty":
        return render_json_pretty(columns, rows, nullvalue)
    if mode == "line":
        return render_line(columns, rows, nullvalue)
    if mode == "list":
        return render_list(columns, rows, nullvalue, header=header, separator=separator)
    if mode == "csv":
        return render_csv(columns, rows, nullvalue, header=header, separator=separator)
    if mode == "column":
        return render_column(columns, rows, nullvalue, header=header, widths=widths)
    raise ValueError(f"unknown output mode {mode!r}")
