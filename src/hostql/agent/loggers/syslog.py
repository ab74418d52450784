"""The syslog logger: lines sent to the local syslog socket, as syslog(3) sends them.

osqueryd calls syslog(3).  Python's ``syslog`` module does the same but always
talks to ``/dev/log``; this logger speaks the same protocol itself so that the
socket is configurable (hidden flag ``--logger_syslog_socket``, used by tests):
one AF_UNIX datagram per line, ``<PRI>Mmm dd hh:mm:ss hostql[pid]: message``
(RFC 3164, local time, no host name, as glibc writes it).

Results and snapshots go at LOG_INFO (prefixed ``@cee:`` with
``--logger_syslog_prepend_cee``); status lines go at NOTICE, WARNING, ERR or
CRIT for osquery severities 0..3 as ``severity=N location=file:line message=...``.
The facility is ``--logger_syslog_facility`` (0..23, default 19 = LOG_LOCAL3).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from hostql.agent.flags import FlagValues
from hostql.agent.loggers.base import (
    STATUS,
    FailureNotice,
    OutboxRow,
    SentIds,
    flag_bool,
    flag_int,
    flag_str,
    parse_status_line,
    status_text,
)

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/dev/log"
DEFAULT_FACILITY = 19  # LOG_LOCAL3 >> 3, osquery's default
LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 2, 3, 4, 5, 6
STATUS_PRIORITY = {0: LOG_NOTICE, 1: LOG_WARNING, 2: LOG_ERR, 3: LOG_CRIT}
SEND_TIMEOUT = 5.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def valid_facility(facility: int) -> int:
    """osquery falls back to LOG_LOCAL3 for a facility outside 0..23."""
    if 0 <= facility <= 23:
        return facility
    log.warning("--logger_syslog_facility=%d is not in 0..23: using %d", facility, DEFAULT_FACILITY)
    return DEFAULT_FACILITY


def syslog_message(facility: int, priority: int, ident: str, pid: int, message: str, now: float) -> bytes:
    """``<PRI>Mmm dd hh:mm:ss ident[pid]: message`` as glibc's syslog(3) frames it."""
    t = time.localtime(now)
    stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"<{facility * 8 + priority}>{stamp} {ident}[{pid}]: {message}".encode("utf-8", "backslashreplace")


class SyslogLogger:
    name = "syslog"
    wants_status = True

    def __init__(
        self,
        *,
        facility: int = DEFAULT_FACILITY,
        prepend_cee: bool = False,
        ident: str = "hostql",
        socket_path: str = DEFAULT_SOCKET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.facility = valid_facility(facility)
        self.prepend_cee = prepend_cee
        self.ident = ident
        self.socket_path = socket_path
        self._clock = clock
        self._sock: socket.socket | None = None
        self._stream = False
        self._sent = SentIds()
        self._notice = FailureNotice(log, self.name)

    def message(self, kind: str, line: str) -> tuple[int, str]:
        """(priority, text) of one outbox row."""
        if kind == STATUS:
            record = parse_status_line(line)
            if record is not None:
                return STATUS_PRIORITY.get(min(max(record.severity, 0), 3), LOG_NOTICE), status_text(record)
            return LOG_NOTICE, line
        return LOG_INFO, ("@cee:" + line) if self.prepend_cee else line

    def deliver(self, batch: list[OutboxRow]) -> bool:
        pid = os.getpid()
        for outbox_id, kind, line in batch:
            if outbox_id in self._sent:
                continue
            priority, text = self.message(kind, line)
            data = syslog_message(self.facility, priority, self.ident, pid, text, self._clock())
            try:
                self._send(data)
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    # Retrying can never fit it; syslog(3) drops it too.
                    log.error("syslog logger: dropped a %d-byte line too long for %s", len(data), self.socket_path)
                else:
                    self._notice.failed(f"cannot send to {self.socket_path}: {exc.strerror or exc}")
                    return False
            self._sent.add(outbox_id)
        self._sent.clear()
        self._notice.ok()
        return True

    def recover(self, pending: list[OutboxRow]) -> list[int]:
        # syslog has no acknowledgement: what was sent before a crash is unknown.
        return []

    def close(self) -> None:
        self._disconnect()

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(SEND_TIMEOUT)
        try:
            sock.connect(self.socket_path)
            self._stream = False
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EPROTOTYPE:
                raise
            # A stream socket (some syslog daemons): NUL-terminated messages.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(SEND_TIMEOUT)
            try:
                sock.connect(self.socket_path)
            except OSError:
                sock.close()
                raise
            self._stream = True
        self._sock = sock
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _send(self, data: bytes) -> None:
        """Send one message; reconnect once (the daemon may have restarted)."""
        for attempt in range(2):
            try:
                sock = self._connect()
                if self._stream:
                    sock.sendall(data + b"\0")
                else:
                    sock.send(data)
                return
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE or attempt == 1:
                    raise
                self._disconnect()


def create(flags: FlagValues | None, context: dict[str, Any] | None = None) -> SyslogLogger:
    return SyslogLogger(
        facility=flag_int(flags, "logger_syslog_facility", DEFAULT_FACILITY),
        prepend_cee=flag_bool(flags, "logger_syslog_prepend_cee", False),
        socket_path=flag_str(flags, "logger_syslog_socket", DEFAULT_SOCKET),
    )
