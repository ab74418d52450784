"""Typing of cell values per declared column type, as osquery does it.

osquery generators produce strings that SQLite converts by column type: integers
with base detection (``0x`` hex, leading ``0`` octal), doubles with ``strtod``,
and an empty string or a failed conversion becomes NULL.  Our generators yield
Python values already typed in the common case; these converters handle the rest.
"""

from __future__ import annotations

from collections.abc import Callable

from hostql.tables.spec import ColumnType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def to_integer(value: Any) -> int | None:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text, 0)
    except ValueError:
        pass
    # strtol with base 0 reads a leading 0 as octal, which Python's int() refuses.
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    try:
        if len(digits) > 1 and digits.startswith("0"):
            return sign * int(digits, 8)
    except ValueError:
        return None
    return None


def to_double(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def to_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def to_blob(value: Any) -> Any:
    return value


_CONVERTERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.TEXT: to_text,
    ColumnType.INTEGER: to_integer,
    ColumnType.BIGINT: to_integer,
    ColumnType.UNSIGNED_BIGINT: to_integer,
    ColumnType.DOUBLE: to_double,
    ColumnType.BLOB: to_blob,
}

_PYTHON_TYPES: dict[ColumnType, type] = {
    ColumnType.TEXT: str,
    ColumnType.INTEGER: int,
    ColumnType.BIGINT: int,
    ColumnType.UNSIGNED_BIGINT: int,
    ColumnType.DOUBLE: float,
    ColumnType.BLOB: bytes,
}


def converter_for(column_type: ColumnType) -> Callable[[Any], Any]:
    return _CONVERTERS[column_type]


def python_type_for(column_type: ColumnType) -> type:
    return _PYTHON_TYPES[column_type]
