"""The one generic virtual table: osquery's planner rules on apsw.

This is the only module that knows SQLite's virtual-table interface.  Every
table is an eponymous, read-only module built from its :class:`TableSpec`.

Planner rules (osquery's ``xBestIndex``/``xFilter``):

* constraints on index, required and additional columns are handed to the
  generator, each in its own argv slot; others are left to SQLite;
* ``omit`` is never set, so SQLite re-checks every row the generator yields;
* ``IN (...)`` on optimized columns arrives as one set of values;
* every unusable constraint adds cost, so SQLite prefers join orders in which
  index columns are bound; a plan without a required column costs "infinite"
  and, if SQLite has no other choice, fails in ``Filter`` with osquery's error;
* the set of columns the query reads is handed on, so generators can skip
  expensive work.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable, Iterator

import apsw

from hostql.platform import current_platform, implementation_key
from hostql.sql.context import Op, QueryContext
from hostql.sql.values import converter_for, python_type_for

# Not typing.TYPE_CHECKING: importing typing costs the shell's start-up ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any

    from hostql.runtime import Runtime
    from hostql.tables.spec import Column, TableSpec


def _log() -> logging.Logger:
    # logging is imported on first use: the shell's fast path never logs.
    import logging

    return logging.getLogger(__name__)

Row = tuple["Any", ...] | dict[str, "Any"]
Generator = Callable[[QueryContext], Iterable[Row]]

PUSHABLE_OPS: frozenset[int] = frozenset(int(op) for op in Op)
UNUSABLE_CONSTRAINT_COST = 10.0
MISSING_REQUIRED_COST = 1e18


class TableError(apsw.SQLError):
    """A generator's deliberate refusal: the query fails with this message."""


class RequiredColumnError(apsw.ConstraintError):
    """The query did not constrain any of the table's required columns."""


def required_column_message(spec: TableSpec) -> str:
    names = " or ".join(spec.required_columns)
    return (
        f"Table {spec.name} was queried without a required column in the WHERE clause"
        f" (constrain {names})"
    )


def _strict() -> bool:
    # Tests set this so a generator bug fails loudly instead of ending a scan early.
    return os.environ.get("HOSTQL_STRICT_TABLES", "") not in ("", "0")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_schema_sql(spec: TableSpec, platform: str) -> str:
    """The CREATE TABLE statement osquery gives SQLite for ``spec``."""
    parts = []
    for col in spec.columns:
        text = f"{_quote(col.name)} {col.type.value}"
        if col.hidden_on(platform):
            text += " HIDDEN"
        if col.collate:
            text += f" COLLATE {col.collate}"
        parts.append(text)
    for col in spec.columns:
        for alias in col.aliases:
            parts.append(f"{_quote(alias)} {col.type.value} HIDDEN")
    keys = spec.primary_key()
    body = ", ".join(parts)
    if keys:
        body += ", PRIMARY KEY (" + ", ".join(_quote(k) for k in keys) + ")"
        return f"CREATE TABLE {_quote(spec.name)}({body}) WITHOUT ROWID"
    return f"CREATE TABLE {_quote(spec.name)}({body})"


@functools.lru_cache(maxsize=4096)
def _decode_plan(idx_str: str) -> tuple[tuple[tuple[int, int, bool], ...], bool, tuple[int, ...]]:
    """Inverse of the encoding in ``BestIndexObject``."""
    slots_text, missing, used_text = idx_str.split(";")
    slots = []
    if slots_text:
        for item in slots_text.split(","):
            col, op, is_in = item.split(":")
            slots.append((int(col), int(op), is_in == "1"))
    used = tuple(int(c) for c in used_text.split(",")) if used_text else ()
    return tuple(slots), missing == "1", used


def load_generator(path: str) -> Generator:
    module_name, _, func_name = path.partition(":")
    module = importlib.import_module(module_name)
    func: Generator = getattr(module, func_name)
    return func


def _no_rows(ctx: QueryContext) -> Iterable[Row]:
    _log().debug("table %s has no generator on this platform; it returns no rows", ctx.table.name)
    return ()


class TableModule:
    """apsw VTModule for one spec; eponymous so ``FROM <name>`` just works."""

    def __init__(self, spec: TableSpec, runtime: Runtime | None, platform: str | None = None) -> None:
        # Only cheap work here: a connection creates every module, but a query
        # touches few tables; the rest is prepared in Connect.
        self.spec = spec
        self.runtime = runtime
        self.platform = platform or current_platform()
        self.column_source: list[int] = []
        self.sql_columns: list[Column] = []
        self.python_types: list[type] = []
        self.converters: list[Callable[[Any], Any]] = []
        self._generator: Generator | None = None

    def _prepare(self) -> None:
        spec = self.spec
        names = list(spec.column_names)
        # Alias columns read their target's value.
        source = list(range(len(names)))
        for col in spec.columns:
            for _alias in col.aliases:
                source.append(names.index(col.name))
        self.sql_columns = [spec.columns[i] for i in source]
        self.python_types = [python_type_for(c.type) for c in self.sql_columns]
        self.converters = [converter_for(c.type) for c in self.sql_columns]
        self.column_source = source

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            key = implementation_key(self.spec.implementations, self.platform)
            self._generator = load_generator(self.spec.implementations[key]) if key else _no_rows
        return self._generator

    def Connect(self, connection: apsw.Connection, modulename: str, databasename: str,
                tablename: str, *args: Any) -> tuple[str, VirtualTable]:
        if not self.column_source:
            self._prepare()
        return table_schema_sql(self.spec, self.platform), VirtualTable(self)

    Create = Connect


class VirtualTable:
    def __init__(self, module: TableModule) -> None:
        self.module = module
        columns = module.sql_columns
        self._pushdown = [c.pushdown for c in columns]
        self._optimized = [c.optimized for c in columns]
        self._required = [c.required for c in columns]
        self._has_required = any(self._required)

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        slots: list[str] = []
        cost = 1.0
        required_bound = False
        argv = 0
        for i in range(info.nConstraint):
            column = info.get_aConstraint_iColumn(i)
            op = info.get_aConstraint_op(i)
            if column < 0 or op not in PUSHABLE_OPS or not self._pushdown[column]:
                continue
            if not info.get_aConstraint_usable(i):
                cost += UNUSABLE_CONSTRAINT_COST
                continue
            argv += 1
            info.set_aConstraintUsage_argvIndex(i, argv)
            is_in = False
            if self._optimized[column] and op == Op.EQUALS and info.get_aConstraintUsage_in(i):
                info.set_aConstraintUsage_in(i, True)
                is_in = True
            source = self.module.column_source[column]
            slots.append(f"{source}:{op}:{int(is_in)}")
            if self._required[column]:
                required_bound = True
        missing = self._has_required and not required_bound
        if missing:
            cost = MISSING_REQUIRED_COST
        used = sorted({self.module.column_source[c] for c in info.colUsed if c < len(self.module.column_source)})
        info.idxStr = ",".join(slots) + (";1;" if missing else ";0;") + ",".join(map(str, used))
        info.estimatedCost = cost
        return True

    def Open(self) -> Cursor:
        return Cursor(self.module)

    def Disconnect(self) -> None:
        pass

    Destroy = Disconnect


class Cursor:
    __slots__ = ("_aliases", "_conv", "_eof", "_iter", "_names", "_row", "_rowid", "_types", "_width", "module")

    def __init__(self, module: TableModule) -> None:
        self.module = module
        self._iter: Iterator[Row] = iter(())
        self._row: tuple[Any, ...] = ()
        self._eof = True
        self._rowid = 0
        self._names = module.spec.column_names
        self._width = len(self._names)
        self._types = module.python_types
        self._conv = module.converters
        # Alias columns come after the spec's columns; their values are
        # appended to each row so Column is a plain index.
        self._aliases = tuple(module.column_source[self._width:])

    def Filter(self, indexnum: int, indexname: str, constraintargs: tuple[Any, ...]) -> None:
        spec = self.module.spec
        slots, missing, used = _decode_plan(indexname)
        if missing:
            raise RequiredColumnError(required_column_message(spec))
        names = self._names
        ctx = QueryContext(spec, {}, frozenset(names[i] for i in used), self.module.runtime)
        for (column, op, is_in), value in zip(slots, constraintargs):
            if is_in:
                for item in value:
                    ctx.add(names[column], Op.EQUALS, item)
            else:
                ctx.add(names[column], Op(op), value)
        self._rowid = 0
        self._eof = False
        try:
            self._iter = iter(self.module.generator(ctx))
        except (TableError, RequiredColumnError):
            raise
        except Exception:
            if _strict():
                raise
            _log().warning("table %s failed", spec.name, exc_info=True)
            self._iter = iter(())
        self.Next()

    def Next(self) -> None:
        try:
            row = next(self._iter)
        except StopIteration:
            self._eof = True
            return
        except (TableError, RequiredColumnError):
            raise
        except Exception:
            if _strict():
                raise
            _log().warning("table %s stopped early", self.module.spec.name, exc_info=True)
            self._eof = True
            return
        if row.__class__ is dict:
            row = tuple(row.get(n) for n in self._names)  # type: ignore[union-attr]
        elif len(row) != self._width:
            raise TableError(
                f"table {self.module.spec.name} produced a row of {len(row)} values for {self._width} columns"
            )
        if self._aliases:
            row = row + tuple(row[i] for i in self._aliases)  # type: ignore[operator,index]
        self._row = row  # type: ignore[assignment]
        self._rowid += 1

    def Eof(self) -> bool:
        return self._eof

    def Column(self, number: int) -> Any:
        # Called once per cell: keep it to one index and one type check.
        value = self._row[number]
        if value is None or value.__class__ is self._types[number]:
            return value
        return self._conv[number](value)

    def Rowid(self) -> int:
        return self._rowid

    def Close(self) -> None:
        self._iter = iter(())
