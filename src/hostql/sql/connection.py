"""A SQL connection with every table, function and collation osquery has."""

from __future__ import annotations

from collections.abc import Iterator

import apsw

from hostql.platform import current_platform
from hostql.plugins import prepare_connection
from hostql.runtime import Runtime
from hostql.sql import functions
from hostql.sql.vtable import TableModule
from hostql.tables.registry import platform_specs
from hostql.tables.spec import TableSpec

# Not typing.TYPE_CHECKING: importing typing costs the shell's start-up ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class QueryError(Exception):
    """A query that cannot run; the message is what osqueryi would print."""


class QueryResult:
    """Column names in SQL order, declared types and rows of values."""

    __slots__ = ("columns", "rows", "types")

    def __init__(self, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self.columns = columns
        self.types = types
        self.rows = rows

    def __repr__(self) -> str:
        return f"QueryResult(columns={self.columns!r}, rows={len(self.rows)})"

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


# osqueryi's authorizer allows reads, temp tables/views, functions, recursion and
# transactions; only these PRAGMAs are harmless enough to keep.
_ALLOWED_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "function_list", "journal_mode", "case_sensitive_like", "collation_list"}
)
_DENIED_ACTIONS = frozenset({apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH})


def _authorizer(action: int, arg1: str | None, arg2: str | None, dbname: str | None, trigger: str | None) -> int:
    if action in _DENIED_ACTIONS:
        return apsw.SQLITE_DENY
    if action == apsw.SQLITE_PRAGMA and (arg1 or "").lower() not in _ALLOWED_PRAGMAS:
        return apsw.SQLITE_DENY
    return apsw.SQLITE_OK


def _error_message(exc: apsw.Error) -> str:
    """osqueryi prints SQLite's message without apsw's ``XError:`` prefix."""
    text = str(exc)
    prefix, sep, rest = text.partition(": ")
    if sep and prefix.endswith("Error") and " " not in prefix:
        return rest
    return text


class Connection:
    """An in-memory database where every registered table exists.

    >>> with Connection() as db:
    ...     rows = db.query("SELECT version FROM kernel_info")
    """

    def __init__(self, runtime: Runtime | None = None, *, tables: dict[str, TableSpec] | None = None,
                 platform: str | None = None) -> None:
        self.runtime = runtime if runtime is not None else Runtime()
        self.platform = platform or current_platform()
        self.tables = tables if tables is not None else platform_specs(self.platform)
        self.db = apsw.Connection(":memory:")
        functions.register(self.db)
        self.modules: dict[str, TableModule] = {}
        for name, spec in self.tables.items():
            module = TableModule(spec, self.runtime, self.platform)
            self.db.create_module(
                name, module, use_bestindex_object=True, eponymous_only=True, read_only=True  # type: ignore[arg-type]
            )
            self.modules[name] = module
        for spec in self.tables.values():
            for alias in spec.aliases:
                self.db.execute(f'CREATE VIEW "{alias}" AS SELECT * FROM "{spec.name}"')
        self.db.authorizer = _authorizer
        prepare_connection(self.db)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def execute(self, sql: str, bindings: tuple[Any, ...] | dict[str, Any] | None = None) -> QueryResult:
        """Run ``sql``; the result is that of its last statement."""
        description: tuple[tuple[Any, ...], ...] = ()
        rows: list[tuple[Any, ...]] = []

        def start_statement(cursor: apsw.Cursor, statement: str, params: Any) -> bool:
            # The description is readable before the first step even when the
            # statement returns no rows, which is the only way to get column
            # names of an empty result.
            nonlocal description, rows
            description = cursor.description
            rows = []
            return True

        try:
            cursor = self.db.cursor()
            cursor.exec_trace = start_statement
            for row in cursor.execute(sql, bindings):
                rows.append(row)
        except apsw.Error as exc:
            raise QueryError(_error_message(exc)) from exc
        columns = tuple(d[0] for d in description)
        types = tuple(d[1] or "" for d in description)
        return QueryResult(columns, types, rows)

    def iterate(self, sql: str, bindings: tuple[Any, ...] | dict[str, Any] | None = None
                ) -> Iterator[tuple[tuple[str, ...], tuple[Any, ...]]]:
        """Yield ``(columns, row)`` per row, statement by statement."""
        try:
            cursor = self.db.cursor()
            cursor.execute(sql, bindings)
            for row in cursor:
                yield tuple(d[0] for d in cursor.description), row
        except apsw.Error as exc:
            raise QueryError(_error_message(exc)) from exc

    def query(self, sql: str, bindings: tuple[Any, ...] | dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts keyed by column name, in SQL column order."""
        return self.execute(sql, bindings).as_dicts()

    def statements(self, sql: str) -> Iterator[QueryResult]:
        """Run ``sql`` one statement at a time, yielding each statement's result."""
        remaining = sql
        while remaining.strip():
            try:
                statement, remaining = _split_first(self.db, remaining)
            except apsw.Error as exc:
                raise QueryError(_error_message(exc)) from exc
            if statement.strip():
                yield self.execute(statement)


def _split_first(db: apsw.Connection, sql: str) -> tuple[str, str]:
    """Split off the first complete statement of ``sql``."""
    index = 0
    while True:
        index = sql.find(";", index)
        if index < 0:
            return sql, ""
        candidate = sql[: index + 1]
        if apsw.complete(candidate):
            return candidate, sql[index + 1 :]
        index += 1
