"""The ``stdout`` log destination: one JSON object per line on standard output."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from hostql.server import fastjson


class StdoutDestination:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, kind: str, lines: list[dict[str, Any]]) -> None:
        self.write_encoded(kind, [fastjson.dumps(line) for line in lines])

    def write_encoded(self, kind: str, lines: list[bytes]) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        text = "".join(line.decode("utf-8") + "\n" for line in lines)
        with self._lock:
            stream.write(text)
            stream.flush()


def from_settings(settings: Any, kind: str) -> StdoutDestination:
    return StdoutDestination()
