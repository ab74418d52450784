"""The Logger interface every sink implements, and the helpers the sinks share.

A logger drains its own rows of the store's outbox.  ``deliver`` gets a batch of
``(outbox id, kind, line)`` rows in id order and answers True only when every row
was written or acknowledged; ``recover`` runs once at start and names the pending
rows that a crash left already written.

Optional attributes a logger may carry (read with :func:`wants_status`):

``wants_status`` (default True)
    whether the status handler should queue JSON status lines for this sink.
    The filesystem logger says False: it writes glog text files directly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hostql.agent.flags import FlagError, FlagValue, FlagValues

OutboxRow = tuple[int, str, str]

RESULT = "result"
SNAPSHOT = "snapshot"
STATUS = "status"
KINDS = (RESULT, SNAPSHOT, STATUS)


@runtime_checkable
class Logger(Protocol):
    """A log sink; see docs/agent-internals.md."""

    name: str

    def deliver(self, batch: list[OutboxRow]) -> bool: ...

    def recover(self, pending: list[OutboxRow]) -> list[int]: ...

    def close(self) -> None: ...


class LoggerError(ValueError):
    """A logger cannot be built from the given names or flags."""


def wants_status(logger: Logger) -> bool:
    """Whether status lines should be queued in the outbox for ``logger``."""
    return bool(getattr(logger, "wants_status", True))


# flags


def flag_value(flags: FlagValues | None, name: str, default: FlagValue) -> FlagValue:
    """The flag's value, or ``default`` when the flag is not defined (yet)."""
    if flags is None:
        return default
    try:
        return flags.get(name)
    except FlagError:
        return default


def flag_int(flags: FlagValues | None, name: str, default: int) -> int:
    value = flag_value(flags, name, default)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(str(value).strip(), 0)
    except ValueError:
        raise LoggerError(f"flag --{name} expects an integer, got {value!r}") from None


def flag_bool(flags: FlagValues | None, name: str, default: bool) -> bool:
    value = flag_value(flags, name, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def flag_str(flags: FlagValues | None, name: str, default: str) -> str:
    return str(flag_value(flags, name, default))


def parse_mode(value: str | int) -> int:
    """``--logger_mode`` is an octal string such as ``0640``; an int is taken as is."""
    if isinstance(value, int):
        mode = value
    else:
        text = value.strip().lower().removeprefix("0o")
        try:
            mode = int(text, 8) if text else -1
        except ValueError:
            mode = -1
    if not 0 <= mode <= 0o7777:
        raise LoggerError(f"--logger_mode expects an octal file mode such as 0640, got {value!r}")
    return mode


# status lines


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """The fields of a JSON status line that the text sinks print."""

    severity: int
    filename: str
    line: int
    message: str
    unix_time: int


def parse_status_line(line: str) -> StatusRecord | None:
    """Read a JSON status line (``logformat.status_line``); None if it is not one."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    try:
        return StatusRecord(
            severity=int(obj.get("severity", 0)),
            filename=str(obj.get("filename", "")),
            line=int(obj.get("line", 0)),
            message=str(obj.get("message", "")),
            unix_time=int(obj.get("unixTime", 0)),
        )
    except (TypeError, ValueError):
        return None


def status_text(record: StatusRecord) -> str:
    """How osquery's stdout and syslog plugins print a status line."""
    return f"severity={record.severity} location={record.filename}:{record.line} message={record.message}"


class FailureNotice:
    """Logs a sink's failure once per outage instead of once per retry.

    Every status line a logger emits is itself queued to the sinks; a sink that
    retries every few seconds must not flood the outbox with its own errors.
    """

    def __init__(self, log: logging.Logger, sink: str) -> None:
        self._log = log
        self._sink = sink
        self.failing = False

    def failed(self, message: str) -> None:
        if not self.failing:
            self.failing = True
            self._log.error("%s logger: %s", self._sink, message)

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            self._log.info("%s logger: delivering again", self._sink)


class SentIds:
    """Ids written during a batch that then failed, so a retry skips them.

    Sinks without acknowledgement (stdout, syslog) cannot ask the reader what it
    already has; remembering what this process sent avoids doubling lines when
    the daemon retries the same batch.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def __contains__(self, outbox_id: object) -> bool:
        return outbox_id in self._ids

    def add(self, outbox_id: int) -> None:
        self._ids.add(outbox_id)

    def clear(self) -> None:
        self._ids.clear()
