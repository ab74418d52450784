"""Declarative table specs: plain data, no logic.

A :class:`TableSpec` says what a table looks like (osquery's name, columns, types
and column options) and where its generators live.  Generators are referenced by
dotted path strings and imported only when the table is first queried, so that
building a connection never imports platform code.
"""

from __future__ import annotations

from enum import StrEnum

LINUX = "linux"
DARWIN = "darwin"
WINDOWS = "windows"
ALL_PLATFORMS: frozenset[str] = frozenset({LINUX, DARWIN, WINDOWS})
POSIX_PLATFORMS: frozenset[str] = frozenset({LINUX, DARWIN})
LINUX_ONLY: frozenset[str] = frozenset({LINUX})

# The key under which a spec names its cross-platform (psutil) generator.
PORTABLE = "portable"


class ColumnType(StrEnum):
    """SQL column types as osquery declares them."""

    TEXT = "TEXT"
    INTEGER = "INTEGER"
    BIGINT = "BIGINT"
    UNSIGNED_BIGINT = "UNSIGNED BIGINT"
    DOUBLE = "DOUBLE"
    BLOB = "BLOB"


TEXT = ColumnType.TEXT
INTEGER = ColumnType.INTEGER
BIGINT = ColumnType.BIGINT
UNSIGNED_BIGINT = ColumnType.UNSIGNED_BIGINT
DOUBLE = ColumnType.DOUBLE
BLOB = ColumnType.BLOB


class Column:
    """One column of a table, with osquery's column options.

    ``index``: equality constraints are handed to the generator (and the column is
    part of the primary key).  ``required``: the query must constrain it (any one
    of the required columns satisfies the rule).  ``additional``: constraints are
    handed to the generator because they change what it produces.
    ``optimized``: ``IN (...)`` lists arrive all at once.  ``hidden``: left out of
    ``SELECT *``.  ``platforms``: where the column is meaningful; elsewhere it
    exists but is hidden, as osquery's ``extended_schema`` does.
    """

    # A plain class rather than a dataclass: importing dataclasses costs the
    # shell a tenth of its start-up budget.
    __slots__ = (
        "additional",
        "aliases",
        "collate",
        "description",
        "hidden",
        "index",
        "name",
        "optimized",
        "platforms",
        "required",
        "type",
    )

    def __init__(
        self,
        name: str,
        type: ColumnType,
        description: str = "",
        *,
        index: bool = False,
        required: bool = False,
        additional: bool = False,
        optimized: bool = False,
        hidden: bool = False,
        collate: str | None = None,
        aliases: tuple[str, ...] = (),
        platforms: frozenset[str] | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.description = description
        self.index = index
        self.required = required
        self.additional = additional
        self.optimized = optimized
        self.hidden = hidden
        self.collate = collate
        self.aliases = aliases
        self.platforms = platforms

    def __repr__(self) -> str:
        return f"Column({self.name!r}, {self.type.value})"

    @property
    def pushdown(self) -> bool:
        """True when constraints on this column are handed to the generator."""
        return self.index or self.required or self.additional

    def hidden_on(self, platform: str) -> bool:
        """osquery compiles extended-schema columns of other platforms as HIDDEN."""
        if self.hidden:
            return True
        return self.platforms is not None and platform not in self.platforms


class TableSpec:
    """A table: its schema, attributes and generator per platform.

    ``implementations`` maps a platform name (``linux``, ``darwin``, ``windows``)
    or :data:`PORTABLE` to ``"module:function"``.  A platform without its own
    entry uses the portable generator; a table with neither returns no rows.
    """

    __slots__ = (
        "aliases",
        "cacheable",
        "columns",
        "description",
        "evented",
        "examples",
        "implementations",
        "name",
        "no_pkey",
        "platforms",
        "user_data",
        "utility",
    )

    def __init__(
        self,
        name: str,
        description: str,
        columns: tuple[Column, ...],
        implementations: dict[str, str] | None = None,
        platforms: frozenset[str] = ALL_PLATFORMS,
        aliases: tuple[str, ...] = (),
        cacheable: bool = False,
        user_data: bool = False,
        utility: bool = False,
        evented: bool = False,
        no_pkey: bool = False,
        examples: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.description = description
        self.columns = columns
        self.implementations = implementations or {}
        self.platforms = platforms
        self.aliases = aliases
        self.cacheable = cacheable
        self.user_data = user_data
        self.utility = utility
        self.evented = evented
        self.no_pkey = no_pkey
        self.examples = examples

    def __repr__(self) -> str:
        return f"TableSpec({self.name!r})"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name} has no column {name}")

    def primary_key(self) -> tuple[str, ...]:
        """Primary key columns as osquery declares them to SQLite.

        Index and additional columns form the key (the table is then declared
        WITHOUT ROWID); with additional columns but no index column, every
        column is part of the key; a table with neither has no key.
        """
        if self.no_pkey:
            return ()
        keys = tuple(c.name for c in self.columns if c.index or c.additional)
        if not keys:
            return ()
        if not any(c.index for c in self.columns):
            return self.column_names
        return keys

def table(
    name: str,
    description: str,
    columns: list[Column],
    *,
    linux: str | None = None,
    darwin: str | None = None,
    windows: str | None = None,
    portable: str | None = None,
    platforms: frozenset[str] = ALL_PLATFORMS,
    aliases: tuple[str, ...] = (),
    cacheable: bool = False,
    user_data: bool = False,
    utility: bool = False,
    evented: bool = False,
    no_pkey: bool = False,
    examples: tuple[str, ...] = (),
) -> TableSpec:
    """Build a :class:`TableSpec` with generators given per platform keyword."""
    impls = {
        key: path
        for key, path in (
            (LINUX, linux),
            (DARWIN, darwin),
            (WINDOWS, windows),
            (PORTABLE, portable),
        )
        if path
    }
    return TableSpec(
        name=name,
        description=description,
        columns=tuple(columns),
        implementations=impls,
        platforms=platforms,
        aliases=aliases,
        cacheable=cacheable,
        user_data=user_data,
        utility=utility,
        evented=evented,
        no_pkey=no_pkey,
        examples=examples,
    )
