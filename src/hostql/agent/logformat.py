"""Result and status log lines, byte-for-byte in osqueryd's shape.

Key order, value types and escaping follow osquery 5 (``osquery/core/query.cpp``
and the logger tests): compact JSON, ``columns`` keys sorted, every column value a
string unless ``logger_numerics``, ``unixTime``/``epoch``/``counter`` numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def calendar_time(unix_time: int) -> str:
    """C ``asctime()`` of the UTC time plus ``" UTC"``: ``Mon May  2 22:27:32 2016 UTC``."""
    t = time.gmtime(unix_time)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year} UTC"
    )


def escape_nonprintable(text: str) -> str:
    """osquery escapes control bytes (< 0x20) as ``\\xHH`` before logging."""
    if text.isprintable() or not any(ord(ch) < 0x20 for ch in text):
        return text
    return "".join(f"\\x{ord(ch):02X}" if ord(ch) < 0x20 else ch for ch in text)


def format_double(value: float) -> str:
    """Doubles as osquery prints them: up to 15 significant digits, with a dot."""
    text = f"{value:.15g}"
    if "." not in text and "e" not in text and "n" not in text:
        text += ".0"
    return text


def log_value(value: Any, numerics: bool, nullvalue: str = "") -> Any:
    """One column value as it appears in a log line."""
    if value is None:
        return nullvalue
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return value if numerics else str(value)
    if isinstance(value, float):
        return value if numerics else format_double(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    return escape_nonprintable(str(value))


def log_row(row: Mapping[str, Any], numerics: bool, nullvalue: str = "") -> dict[str, Any]:
    """A row with sorted keys and log-typed values (osquery rows are std::maps)."""
    return {key: log_value(row[key], numerics, nullvalue) for key in sorted(row)}


def dumps(obj: Any) -> str:
    """Compact JSON with UTF-8 passed through, as rapidjson's Writer emits it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class LineContext:
    """What every result line of one query run shares."""

    name: str
    host_identifier: str
    unix_time: int
    epoch: int
    counter: int
    numerics: bool = False
    decorations: Mapping[str, str] | None = None
    decorations_top_level: bool = False

    def header(self) -> dict[str, Any]:
        head: dict[str, Any] = {
            "name": self.name,
            "hostIdentifier": self.host_identifier,
            "calendarTime": calendar_time(self.unix_time),
            "unixTime": self.unix_time,
            "epoch": self.epoch,
            "counter": self.counter,
            "numerics": self.numerics,
        }
        return head

    def decorate(self, line: dict[str, Any]) -> dict[str, Any]:
        if not self.decorations:
            return line
        if self.decorations_top_level:
            for key, value in self.decorations.items():
                line[key] = value
        else:
            line["decorations"] = dict(self.decorations)
        return line


def _row_lines(ctx: LineContext, rows: Iterable[Row], action: str, nullvalue: str) -> list[str]:
    """Event lines sharing one header: the header is serialised once per run."""
    head = dumps(ctx.decorate(ctx.header()))[:-1]
    tail = f',"action":{dumps(action)}}}'
    return [f'{head},"columns":{dumps(log_row(row, ctx.numerics, nullvalue))}{tail}' for row in rows]


def event_lines(ctx: LineContext, removed: Iterable[Row], added: Iterable[Row], nullvalue: str = "") -> list[str]:
    """Event format: one line per row, every ``removed`` before every ``added``."""
    return _row_lines(ctx, removed, "removed", nullvalue) + _row_lines(ctx, added, "added", nullvalue)


def batch_line(ctx: LineContext, removed: Iterable[Row], added: Iterable[Row], nullvalue: str = "") -> str:
    """Batch format (``--logger_event_type=false``): one line per run."""
    line: dict[str, Any] = {
        "diffResults": {
            "removed": [log_row(r, ctx.numerics, nullvalue) for r in removed],
            "added": [log_row(r, ctx.numerics, nullvalue) for r in added],
        }
    }
    line.update(ctx.header())
    return dumps(ctx.decorate(line))


def snapshot_line(ctx: LineContext, rows: Iterable[Row], nullvalue: str = "") -> str:
    """Snapshot format: the whole result set in one line."""
    line: dict[str, Any] = {"snapshot": [log_row(r, ctx.numerics, nullvalue) for r in rows], "action": "snapshot"}
    line.update(ctx.header())
    return dumps(ctx.decorate(line))


def snapshot_event_lines(ctx: LineContext, rows: Iterable[Row], nullvalue: str = "") -> list[str]:
    """``--logger_snapshot_event_type``: one event line per row, action snapshot."""
    return _row_lines(ctx, rows, "snapshot", nullvalue)


SEVERITY_NAMES = {0: "INFO", 1: "WARNING", 2: "ERROR", 3: "FATAL"}


def status_line(
    host_identifier: str,
    unix_time: int,
    severity: int,
    filename: str,
    line: int,
    message: str,
    version: str,
    decorations: Mapping[str, str] | None = None,
) -> str:
    """A status log line as the TLS and other JSON loggers receive it."""
    obj: dict[str, Any] = {
        "hostIdentifier": host_identifier,
        "calendarTime": calendar_time(unix_time),
        "unixTime": unix_time,
        "severity": severity,
        "filename": filename,
        "line": line,
        "message": message,
        "version": version,
    }
    if decorations:
        obj["decorations"] = dict(decorations)
    return dumps(obj)
