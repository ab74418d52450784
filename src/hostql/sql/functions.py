"""SQL functions and collations osquery adds to SQLite.

Each function follows osquery's behaviour for NULLs, bad input and errors
(``osquery/sql/sqlite_*.cpp``); deliberate differences are noted where they
are made.  A function that must fail the query raises :class:`FunctionError`,
which SQLite reports with our message.

This module is imported by every connection, so modules only some functions
need (hashlib, ipaddress, socket, base64) are imported inside those functions.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from functools import lru_cache

import apsw

from hostql.sql import versions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# osquery's --regex_max_size default: longer patterns are refused.
REGEX_MAX_SIZE = 256
# What boost::algorithm::trim removes (std::isspace in the C locale).
_C_SPACE = " \t\n\v\f\r"


class FunctionError(apsw.SQLError):
    """A SQL function refused its input; the query fails with this message."""


# --- value conversion as SQLite's C API does it --------------------------------

@lru_cache(maxsize=1)
def _formatter() -> apsw.Connection:
    return apsw.Connection(":memory:")


def _real_text(value: float) -> str:
    # SQLite's own REAL -> TEXT rendering, so results match what CAST gives.
    for (text,) in _formatter().execute("SELECT CAST(? AS TEXT)", (value,)):
        return str(text)
    return repr(value)


def _text(value: Any) -> str:
    """sqlite3_value_text: the value as text (BLOBs read as UTF-8)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return _real_text(value)
    return str(value)


def _c_bytes(value: Any) -> bytes:
    """The text's bytes up to the first NUL, as a C string is read."""
    data = value if isinstance(value, bytes) else _text(value).encode("utf-8", "surrogatepass")
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


def _int(value: Any) -> int:
    """sqlite3_value_int64: integers as they are, reals truncated, text's numeric prefix."""
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else 0
    match = re.match(r"\s*([+-]?\d+)", _text(value))
    return int(match.group(1)) if match else 0


def _double(value: Any) -> float:
    """sqlite3_value_double: numbers as they are, text's numeric prefix, else 0.0."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.match(r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)", _text(value))
    return float(match.group(1)) if match else 0.0


# --- strings -------------------------------------------------------------------

def _pick(pieces: list[str], index: Any) -> str | None:
    position = _int(index)
    if position < 0 or position >= len(pieces):
        return None
    return pieces[position]


def split(value: Any, tokens: Any, index: Any) -> str | None:
    """Split on any character of ``tokens``; empty pieces dropped, pieces trimmed."""
    if value is None or tokens is None or index is None:
        return None
    delimiters = _text(tokens)
    if not delimiters:
        raise FunctionError("Invalid input to split function")
    pattern = "[" + re.escape(delimiters) + "]"
    pieces = [p.strip(_C_SPACE) for p in re.split(pattern, _text(value)) if p]
    return _pick(pieces, index)


@lru_cache(maxsize=128)
def _regex(pattern: str) -> re.Pattern[str]:
    if len(pattern.encode("utf-8")) > REGEX_MAX_SIZE:
        raise FunctionError(f"Invalid regex: too big, max size is {REGEX_MAX_SIZE} bytes")
    try:
        return re.compile(pattern)
    except re.error:
        raise FunctionError("Invalid regex") from None


def regex_split(value: Any, pattern: Any, index: Any) -> str | None:
    """Split on a regular expression, keeping a leading empty piece but not a trailing one."""
    if value is None or pattern is None or index is None:
        return None
    text, expression = _text(value), _text(pattern)
    if not expression:
        raise FunctionError("Invalid input to split function")
    regex = _regex(expression)
    pieces: list[str] = []
    start = 0
    matched = False
    for match in regex.finditer(text):
        matched = True
        pieces.append(text[start:match.start()])
        start = match.end()
    # std::sregex_token_iterator yields the tail only when it is not empty.
    if not matched or start < len(text):
        pieces.append(text[start:])
    return _pick(pieces, index)


def regex_match(value: Any, pattern: Any, index: Any) -> str | None:
    """Group ``index`` of the first match (0 = the whole match); NULL if none."""
    if value is None or pattern is None or index is None:
        return None
    match = _regex(_text(pattern)).search(_text(value))
    if match is None:
        return None
    position = _int(index)
    if position < 0 or position > (match.re.groups):
        return None
    return match.group(position) or ""


def concat(*values: Any) -> str | None:
    """Concatenate the arguments as text, skipping NULLs."""
    if not values:
        return None
    return "".join(_text(v) for v in values if v is not None)


def concat_ws(*values: Any) -> str | None:
    """Join with a separator, skipping NULLs.

    As osquery does, the separator follows every non-NULL argument that is not
    the last argument, so trailing NULLs leave a trailing separator.
    """
    if not values:
        raise FunctionError("Missing separator to concat_ws")
    sep = "" if values[0] is None else _text(values[0])
    rest = values[1:]
    if not rest:
        return None
    out: list[str] = []
    for i, value in enumerate(rest):
        if value is None:
            continue
        out.append(_text(value))
        if sep and i + 1 < len(rest):
            out.append(sep)
    return "".join(out)


# --- network -------------------------------------------------------------------

def inet_aton(value: Any) -> int | None:
    """Dotted-quad IPv4 text as an integer in host order; NULL otherwise."""
    import socket

    if value is None:
        return None
    text = _text(value)
    if ":" in text:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return None
    value_: int = struct.unpack("!I", packed)[0]
    return value_


def in_cidr_block(cidr: Any, address: Any) -> int:
    """1 if ``address`` lies inside ``cidr`` (IPv4 or IPv6), else 0.

    Every address of the block counts, network and broadcast included; osquery's
    boost ``hosts()`` range leaves those two out for IPv4, which we consider a bug.
    """
    import ipaddress

    if not isinstance(cidr, str):
        raise FunctionError("CIDR must be a string")
    if not isinstance(address, str):
        raise FunctionError("IP addresss must be a string")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise FunctionError("IP address cannot be parsed") from None
    family = f"v{ip.version}"
    try:
        if "/" not in cidr:
            raise ValueError(cidr)
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise FunctionError(f"CIDR for IP address {family} cannot be parsed") from None
    if network.version != ip.version:
        raise FunctionError(f"CIDR for IP address {family} cannot be parsed")
    return 1 if ip in network else 0


def _community_id(args: tuple[Any, ...]) -> str:
    """Community ID v1 of a flow; raises FunctionError with osquery's messages."""
    import base64
    import hashlib
    import ipaddress

    saddr, daddr, sport, dport, proto = args[:5]
    seed = 0
    if len(args) == 6:
        if type(args[5]) is not int:
            raise FunctionError("Community ID seed must be an integer")
        seed = args[5]
        if not -32768 <= seed <= 32767:
            raise FunctionError("Community ID seed must fit in 2 bytes")
    if not isinstance(saddr, str) or not isinstance(daddr, str):
        raise FunctionError("Community ID IPs must be strings")
    try:
        src = ipaddress.ip_address(saddr)
    except ValueError:
        raise FunctionError("Community ID saddr cannot be parsed as IP") from None
    try:
        dst = ipaddress.ip_address(daddr)
    except ValueError:
        raise FunctionError("Community ID daddr cannot be parsed as IP") from None
    if type(sport) is not int or type(dport) is not int:
        raise FunctionError("Community ID ports must be integers")
    if not (0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF):
        raise FunctionError("Community ID ports must fit in 2 bytes")
    if type(proto) is not int:
        raise FunctionError("Community ID protocol must be an integer")
    if not 0 <= proto <= 0xFF:
        raise FunctionError("Community ID protocol must fit in 1 byte")
    # The smaller endpoint goes first so both directions of a flow agree; IPv4
    # sorts before IPv6, as boost's address comparison does.
    s_key = (src.version, src.packed)
    d_key = (dst.version, dst.packed)
    if not (s_key < d_key or (s_key == d_key and sport < dport)):
        src, dst = dst, src
        sport, dport = dport, sport
    data = (struct.pack("!h", seed) + src.packed + dst.packed
            + struct.pack("!BBHH", proto, 0, sport, dport))
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def community_id_v1(*args: Any) -> str | None:
    """Community ID, or NULL for input it cannot use (osquery logs a warning)."""
    try:
        return _community_id(args)
    except FunctionError:
        return None


def community_id_v1_strict(*args: Any) -> str:
    return _community_id(args)


# --- hashing and encoding ------------------------------------------------------------

def _digest(name: str) -> Callable[[Any], str | None]:
    def digest(value: Any) -> str | None:
        import hashlib

        if value is None:
            return None
        return hashlib.new(name, _c_bytes(value)).hexdigest()

    digest.__name__ = name
    return digest


def to_base64(value: Any) -> str | None:
    import base64

    if value is None:
        return None
    return base64.b64encode(_c_bytes(value)).decode("ascii")


def from_base64(value: Any) -> str | bytes | None:
    """Decoded text; '' when the input is not base64.

    Line breaks are ignored and padding is optional, as in osquery.  Decoded
    bytes that are not UTF-8 come back as a BLOB rather than mangled text.
    """
    import binascii

    if value is None:
        return None
    text = _c_bytes(value).replace(b"\r", b"").replace(b"\n", b"").rstrip(b"=")
    if not text:
        return ""
    if len(text) % 4 == 1:
        return ""
    padded = text + b"=" * (-len(text) % 4)
    try:
        decoded = binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        return ""
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return decoded


def conditional_to_base64(value: Any) -> str | None:
    """The text itself when every byte is printable ASCII (0x20-0x7e), else its base64."""
    import base64

    if value is None:
        return None
    data = _c_bytes(value)
    if all(0x20 <= b <= 0x7E for b in data):
        return data.decode("ascii")
    return base64.b64encode(data).decode("ascii")


# --- filesystem -------------------------------------------------------------------

def parent_directory(value: Any) -> str | None:
    """Everything before the last '/'; NULL when there is none."""
    if not isinstance(value, str):
        raise FunctionError("Invalid inputs to parent_directory, TEXT was expected")
    position = value.rfind("/")
    if position < 0:
        return None
    return value[:position]


# --- versions -------------------------------------------------------------------

def version_compare(*args: Any) -> int | None:
    """-1, 0 or 1 as the first version sorts before, with or after the second."""
    left, right = args[0], args[1]
    if left is None or right is None:
        return None
    flavour = "" if len(args) == 2 or args[2] is None else _text(args[2]).upper()
    compare = versions.FLAVOURS.get(flavour)
    if compare is None:
        raise FunctionError("version_compare: the third argument must be ARCH, DPKG or RHEL")
    result = compare(_text(left), _text(right))
    return (result > 0) - (result < 0)


# --- math -------------------------------------------------------------------

def _unary(func: Callable[[float], float]) -> Callable[[Any], float | None]:
    def apply(value: Any) -> float | None:
        if value is None:
            return None
        try:
            return func(_double(value))
        except (ValueError, ZeroDivisionError):
            raise FunctionError("Numerical argument out of domain") from None
        except OverflowError:
            raise FunctionError("Numerical result out of range") from None

    return apply


def _rounding(func: Callable[[float], int]) -> Callable[[Any], int | None]:
    # osquery returns integers unchanged and rounds reals to a 64-bit integer.
    def apply(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, int):
            return value
        number = _double(value)
        return func(number) if math.isfinite(number) else None

    return apply


def _power(base: Any, exponent: Any) -> float | None:
    if base is None or exponent is None:
        return None
    try:
        return math.pow(_double(base), _double(exponent))
    except ValueError:
        raise FunctionError("Numerical argument out of domain") from None
    except OverflowError:
        raise FunctionError("Numerical result out of range") from None


def _cot(x: float) -> float:
    return 1.0 / math.tan(x)


def _pi() -> float:
    return math.pi


# Always ours: SQLite has no cot; its one-argument log is base 10 where
# osquery's is natural; its ceil/floor return reals where osquery's return integers.
_MATH_OVERRIDES: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("cot", 1, _unary(_cot)),
    ("log", 1, _unary(math.log)),
    ("ceil", 1, _rounding(math.ceil)),
    ("floor", 1, _rounding(math.floor)),
)

# Used only where this SQLite was built without its math functions.
_MATH_FALLBACKS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("sqrt", 1, _unary(math.sqrt)),
    ("log10", 1, _unary(math.log10)),
    ("exp", 1, _unary(math.exp)),
    ("sin", 1, _unary(math.sin)),
    ("cos", 1, _unary(math.cos)),
    ("tan", 1, _unary(math.tan)),
    ("asin", 1, _unary(math.asin)),
    ("acos", 1, _unary(math.acos)),
    ("atan", 1, _unary(math.atan)),
    ("degrees", 1, _unary(math.degrees)),
    ("radians", 1, _unary(math.radians)),
    ("power", 2, _power),
    ("pi", 0, _pi),
)


def _has_function(db: apsw.Connection, name: str, nargs: int) -> bool:
    args = ", ".join(["1"] * nargs)
    try:
        db.execute(f"SELECT {name}({args})").fetchall()
    except apsw.SQLError:
        return False
    return True


_FUNCTIONS: tuple[tuple[str, int, Callable[..., Any]], ...] = (
    ("split", 3, split),
    ("regex_split", 3, regex_split),
    ("regex_match", 3, regex_match),
    ("concat", -1, concat),
    ("concat_ws", -1, concat_ws),
    ("inet_aton", 1, inet_aton),
    ("in_cidr_block", 2, in_cidr_block),
    ("community_id_v1", 5, community_id_v1),
    ("community_id_v1", 6, community_id_v1),
    ("community_id_v1_strict", 5, community_id_v1_strict),
    ("community_id_v1_strict", 6, community_id_v1_strict),
    ("md5", 1, _digest("md5")),
    ("sha1", 1, _digest("sha1")),
    ("sha256", 1, _digest("sha256")),
    ("to_base64", 1, to_base64),
    ("from_base64", 1, from_base64),
    ("conditional_to_base64", 1, conditional_to_base64),
    ("parent_directory", 1, parent_directory),
    ("version_compare", 2, version_compare),
    ("version_compare", 3, version_compare),
)


def register(db: apsw.Connection) -> None:
    """Add osquery's functions and collations to ``db``."""
    for name, compare in versions.COLLATIONS.items():
        db.create_collation(name, compare)
    for name, nargs, func in _FUNCTIONS:
        db.create_scalar_function(name, func, nargs, deterministic=True)
    for name, nargs, func in _MATH_OVERRIDES:
        db.create_scalar_function(name, func, nargs, deterministic=True)
    for name, nargs, func in _MATH_FALLBACKS:
        if not _has_function(db, name, nargs):
            db.create_scalar_function(name, func, nargs, deterministic=True)
