"""What a generator learns about the query: constraints and used columns.

This mirrors osquery's ``QueryContext``.  Constraints arrive only for columns
whose spec marks them index, required or additional; SQLite re-checks every
row afterwards, so a generator may ignore a constraint and stay correct.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

# Not typing.TYPE_CHECKING: importing typing costs the shell's start-up ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from hostql.runtime import Runtime
    from hostql.tables.spec import TableSpec


class Op(IntEnum):
    """SQLite's constraint operators (osquery uses the same numbers)."""

    EQUALS = 2
    GREATER_THAN = 4
    LESS_THAN_OR_EQUALS = 8
    LESS_THAN = 16
    GREATER_THAN_OR_EQUALS = 32
    MATCH = 64
    LIKE = 65
    GLOB = 66
    REGEXP = 67


class Constraint:
    """One constraint on a column: operator and right-hand value."""

    __slots__ = ("op", "value")

    def __init__(self, op: Op, value: Any) -> None:
        self.op = op
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constraint) and (self.op, self.value) == (other.op, other.value)

    def __hash__(self) -> int:
        return hash((self.op, self.value))

    def __repr__(self) -> str:
        return f"Constraint({self.op.name}, {self.value!r})"


class QueryContext:
    """Constraints per column and the set of columns the query reads."""

    __slots__ = ("columns_used", "constraints", "runtime", "table")

    def __init__(
        self,
        table: TableSpec,
        constraints: dict[str, list[Constraint]] | None = None,
        columns_used: frozenset[str] = frozenset(),
        runtime: Runtime | None = None,
    ) -> None:
        self.table = table
        self.constraints = constraints if constraints is not None else {}
        self.columns_used = columns_used
        self.runtime = runtime

    def equals(self, column: str) -> set[Any]:
        """Values the column must equal (from ``=`` and ``IN (...)``)."""
        return {c.value for c in self.constraints.get(column, ()) if c.op == Op.EQUALS}

    def values(self, column: str, *ops: Op) -> list[Any]:
        """Constraint values on ``column`` for the given operators."""
        return [c.value for c in self.constraints.get(column, ()) if c.op in ops]

    def has(self, column: str, op: Op | None = None) -> bool:
        """True when the query constrains ``column`` (with ``op`` if given)."""
        found = self.constraints.get(column, ())
        return any(op is None or c.op == op for c in found)

    def is_used(self, column: str) -> bool:
        """True when the query reads ``column``; skip expensive work otherwise."""
        return column in self.columns_used

    def any_used(self, columns: Iterable[str]) -> bool:
        return any(c in self.columns_used for c in columns)

    def add(self, column: str, op: Op, value: Any) -> None:
        self.constraints.setdefault(column, []).append(Constraint(op, value))

    @classmethod
    def for_table(
        cls,
        table: TableSpec,
        constraints: dict[str, list[Constraint]] | None = None,
        columns_used: Iterable[str] | None = None,
        runtime: Runtime | None = None,
    ) -> QueryContext:
        """A context for calling a generator directly (tests, other tables)."""
        used = frozenset(columns_used) if columns_used is not None else frozenset(table.column_names)
        return cls(table, dict(constraints or {}), used, runtime)
