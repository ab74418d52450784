"""The stdout logger: every line printed to standard output and flushed.

Result and snapshot lines are printed as they are (JSON).  Status lines are
printed the way osqueryd's stdout plugin prints them:
``severity=0 location=scheduler.py:88 message=...``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from hostql.agent.flags import FlagValues
from hostql.agent.loggers.base import STATUS, FailureNotice, OutboxRow, SentIds, parse_status_line, status_text

log = logging.getLogger(__name__)


def render(kind: str, line: str) -> str:
    """The text printed for one outbox row."""
    if kind == STATUS:
        record = parse_status_line(line)
        if record is not None:
            return status_text(record)
    return line


class StdoutLogger:
    name = "stdout"
    wants_status = True

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._sent = SentIds()
        self._notice = FailureNotice(log, self.name)

    @property
    def stream(self) -> TextIO:
        # Looked up on each use so that a replaced sys.stdout is honoured.
        return self._stream if self._stream is not None else sys.stdout

    def deliver(self, batch: list[OutboxRow]) -> bool:
        stream = self.stream
        for outbox_id, kind, line in batch:
            if outbox_id in self._sent:
                continue
            text = render(kind, line) + "\n"
            try:
                try:
                    stream.write(text)
                except UnicodeEncodeError:
                    stream.write(text.encode("ascii", "backslashreplace").decode("ascii"))
                stream.flush()
            except (OSError, ValueError) as exc:
                self._notice.failed(f"cannot write to standard output: {exc}")
                return False
            self._sent.add(outbox_id)
        self._sent.clear()
        self._notice.ok()
        return True

    def recover(self, pending: list[OutboxRow]) -> list[int]:
        # What reached a pipe before a crash cannot be known: print again.
        return []

    def close(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


def create(flags: FlagValues | None, context: dict[str, Any] | None = None) -> StdoutLogger:
    return StdoutLogger()
