"""Decorations: extra columns added to every log line (config ``decorators``).

``load`` queries run when a config is applied, ``always`` queries before every
scheduled query, and ``interval`` queries when ``unix_time`` is a multiple of
their key.  Only each query's first row counts; its columns become string
values, later queries overwriting same-named keys, as osquery merges them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from hostql.agent.config import Decorators
from hostql.agent.logformat import format_double
from hostql.sql.connection import Connection, QueryError

log = logging.getLogger(__name__)


def decoration_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return format_double(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Decorations:
    """The decoration values in force, recomputed as osquery's points say."""

    def __init__(self, conn: Connection, decorators: Decorators, *, disabled: bool = False) -> None:
        self.conn = conn
        self.decorators = decorators
        self.disabled = disabled
        self._load: dict[str, str] = {}
        self._always: dict[str, str] = {}
        self._interval: dict[str, str] = {}

    def _run(self, queries: Iterable[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for sql in queries:
            try:
                result = self.conn.execute(sql)
            except QueryError as exc:
                log.warning("Decorator query failed: %s: %s", sql, exc)
                continue
            if result.rows:
                for column, value in zip(result.columns, result.rows[0]):
                    values[column] = decoration_value(value)
        return values

    def on_load(self) -> None:
        if not self.disabled:
            self._load = self._run(self.decorators.load)

    def on_tick(self, now: int) -> None:
        if self.disabled:
            return
        for seconds, queries in sorted(self.decorators.interval.items()):
            if seconds > 0 and now % seconds == 0:
                self._interval.update(self._run(queries))

    def before_query(self) -> None:
        if not self.disabled and self.decorators.always:
            self._always = self._run(self.decorators.always)

    def current(self) -> dict[str, str]:
        if self.disabled:
            return {}
        merged = dict(self._load)
        merged.update(self._always)
        merged.update(self._interval)
        return merged
