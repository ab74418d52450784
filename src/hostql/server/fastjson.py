"""JSON for the server's hot paths: orjson when installed, else the standard library.

Both give the same documents: compact (no spaces), UTF-8 (no ``\\uXXXX`` escapes
for non-ASCII), keys in the order given.  What orjson refuses (integers beyond
64 bits, non-string keys, NaN in input, lone surrogates) falls back to
:mod:`json`, so the accepted input is exactly the standard library's.
"""

from __future__ import annotations

import json
from typing import Any

_orjson: Any
try:  # the ``server`` extra installs it; everything works without it, slower
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None

HAVE_ORJSON = _orjson is not None
JSONDecodeError = json.JSONDecodeError


def _default(value: Any) -> str:
    return str(value)


def loads(raw: bytes | str) -> Any:
    """Parse a JSON document; raises :class:`json.JSONDecodeError` or UnicodeDecodeError like ``json.loads``."""
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass  # NaN, lone surrogates, bad UTF-8 ...: let the standard library decide
    return json.loads(raw)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; values JSON cannot hold are written as ``str(value)``."""
    if _orjson is not None:
        try:
            encoded: bytes = _orjson.dumps(value, default=_default, option=_orjson.OPT_PASSTHROUGH_DATETIME)
            return encoded
        except TypeError:
            pass  # integers beyond 64 bits, non-string keys
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_default).encode("utf-8")


def dumps_str(value: Any) -> str:
    """:func:`dumps` as text (the database's JSON column serializer)."""
    return dumps(value).decode("utf-8")


__all__ = ["HAVE_ORJSON", "JSONDecodeError", "dumps", "dumps_str", "loads"]
