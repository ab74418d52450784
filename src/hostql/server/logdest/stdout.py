"""The ``stdout`` log destination: one JSON object per line on standard output."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO


class StdoutDestination:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, kind: str, lines: list[dict[str, Any]]) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        text = "".join(json.dumps(line, separators=(",", ":"), default=str) + "\n" for line in lines)
        with self._lock:
            stream.write(text)
            stream.flush()


def from_settings(settings: Any, kind: str) -> StdoutDestination:
    return StdoutDestination()
