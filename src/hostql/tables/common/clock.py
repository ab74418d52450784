"""The ``time`` table: the current time in the shapes osquery reports it.

Cross-platform: only the standard library's clock and calendar functions.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from hostql.sql.context import QueryContext

# Seconds between 1601-01-01 (the Windows FILETIME epoch) and 1970-01-01.
_FILETIME_EPOCH_OFFSET = 11_644_473_600


def ascii_timestamp(utc: time.struct_time) -> str:
    """C asctime() of a UTC time plus ' UTC', e.g. 'Mon May  2 22:27:32 2016 UTC'.

    time.asctime pads the day with a space exactly like C, and has no trailing
    newline to strip.
    """
    return time.asctime(utc) + " UTC"


def time_row(now: float, with_win_timestamp: bool = False) -> dict[str, object]:
    """The time row for the instant ``now`` (unix seconds)."""
    unix = int(now)
    utc = time.gmtime(unix)
    # osquery prints the local zone's abbreviation (%Z) and falls back to UTC.
    local_zone = time.strftime("%Z", time.localtime(unix)) or "UTC"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", utc)
    row: dict[str, object] = {
        "weekday": time.strftime("%A", utc),
        "year": utc.tm_year,
        "month": utc.tm_mon,
        "day": utc.tm_mday,
        "hour": utc.tm_hour,
        "minutes": utc.tm_min,
        "seconds": utc.tm_sec,
        "timezone": "UTC",
        "local_timezone": local_zone,
        "unix_time": unix,
        "timestamp": ascii_timestamp(utc),
        "datetime": iso,
        "iso_8601": iso,
    }
    if with_win_timestamp:
        row["win_timestamp"] = int((now + _FILETIME_EPOCH_OFFSET) * 10_000_000)
    return row


def gen_time(ctx: QueryContext) -> Iterator[dict[str, object]]:
    # win_timestamp is a Windows-only column, filled only there (as osquery does).
    yield time_row(time.time(), sys.platform == "win32" and ctx.is_used("win_timestamp"))
