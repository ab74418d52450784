"""osquery's SQL functions and version collations, table-driven."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostql.sql.connection import Connection, QueryError
from hostql.sql.versions import compare_arch, compare_dpkg, compare_generic, compare_rhel


@pytest.fixture(scope="module")
def db() -> Iterator[Connection]:
    with Connection(tables={}) as conn:
        yield conn


def one(db: Connection, sql: str, *args: Any) -> Any:
    [(value,)] = db.execute(sql, args).rows
    return value


# --- strings -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("192.168.0.1", ".", 1), "168"),
        (("192.168.0.1", ".0", 0), "192"),
        (("192.168.0.1", ".0", 2), "1"),  # '.' and '0' both split; empties dropped
        (("a, b,,c", ",", 1), "b"),  # pieces are trimmed
        (("a,b", ",", 2), None),
        (("a,b", ",", -1), None),
        ((None, ",", 0), None),
        (("abc", ",", 0), "abc"),
    ],
)
def test_split(db: Connection, args: tuple[Any, ...], expected: Any) -> None:
    assert one(db, "SELECT split(?, ?, ?)", *args) == expected


def test_split_refuses_empty_tokens(db: Connection) -> None:
    with pytest.raises(QueryError, match="Invalid input to split function"):
        db.execute("SELECT split('a', '', 0)")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("192.168.0.1", r"\.", 1), "168"),
        (("192.168.0.1", r"\.0", 0), "192.168"),
        (("192.168.0.1", r"\.0", 1), ".1"),
        ((",a,b,", ",", 0), ""),  # a leading empty piece is kept
        ((",a,b,", ",", 3), None),  # a trailing empty piece is not
        (("abc", "x", 0), "abc"),
        (("a1b22c", r"(\d+)", 2), "c"),  # groups are not returned as pieces
    ],
)
def test_regex_split(db: Connection, args: tuple[Any, ...], expected: Any) -> None:
    assert one(db, "SELECT regex_split(?, ?, ?)", *args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("hello world 42", r"(\w+) (\w+)", 0), "hello world"),
        (("hello world 42", r"(\w+) (\w+)", 2), "world"),
        (("hello world 42", r"(\w+) (\w+)", 3), None),
        (("hello", r"\d+", 0), None),
        (("ab", r"a(x)?b", 1), ""),  # an unmatched group is empty, as std::smatch
        ((None, "a", 0), None),
    ],
)
def test_regex_match(db: Connection, args: tuple[Any, ...], expected: Any) -> None:
    assert one(db, "SELECT regex_match(?, ?, ?)", *args) == expected


def test_regex_errors(db: Connection) -> None:
    with pytest.raises(QueryError, match="Invalid regex"):
        db.execute("SELECT regex_match('a', '(', 0)")
    with pytest.raises(QueryError, match="too big"):
        db.execute("SELECT regex_match('a', ?, 0)", ("a" * 257,))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT concat('a', NULL, 'b', 1, 2.5)", "ab12.5"),
        ("SELECT concat(NULL)", ""),
        ("SELECT concat()", None),
        ("SELECT concat_ws(',', 'a', 'b', 'c')", "a,b,c"),
        ("SELECT concat_ws(',', 'a', NULL, 'c')", "a,c"),
        ("SELECT concat_ws(',', NULL, 'b')", "b"),
        ("SELECT concat_ws(',', 'a', NULL)", "a,"),  # osquery's trailing separator
        ("SELECT concat_ws(NULL, 'a', 'b')", "ab"),
        ("SELECT concat_ws(',')", None),
    ],
)
def test_concat(db: Connection, sql: str, expected: Any) -> None:
    assert one(db, sql) == expected


# --- network -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("address", "expected"),
    [("1.2.3.4", 16909060), ("0.0.0.0", 0), ("255.255.255.255", 4294967295),
     ("1.2.3", None), ("256.1.1.1", None), ("::1", None), ("abc", None), (None, None)],
)
def test_inet_aton(db: Connection, address: Any, expected: Any) -> None:
    assert one(db, "SELECT inet_aton(?)", address) == expected


@pytest.mark.parametrize(
    ("cidr", "address", "expected"),
    [
        ("10.0.0.0/8", "10.1.2.3", 1),
        ("10.0.0.0/8", "11.0.0.1", 0),
        ("192.168.1.0/24", "192.168.1.255", 1),
        ("192.168.1.7/32", "192.168.1.7", 1),
        ("192.168.1.5/24", "192.168.1.9", 1),  # host bits in the CIDR are ignored
        ("2001:db8::/32", "2001:db8:ffff::1", 1),
        ("2001:db8::/32", "2001:db9::1", 0),
    ],
)
def test_in_cidr_block(db: Connection, cidr: str, address: str, expected: int) -> None:
    assert one(db, "SELECT in_cidr_block(?, ?)", cidr, address) == expected
    truth = int(ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False))
    assert truth == expected


@pytest.mark.parametrize(
    ("cidr", "address", "message"),
    [("10.0.0.0/8", "nope", "IP address cannot be parsed"),
     ("10.0.0.0/33", "10.0.0.1", "CIDR for IP address v4 cannot be parsed"),
     ("10.0.0.0/8", "::1", "CIDR for IP address v6 cannot be parsed"),
     (5, "10.0.0.1", "CIDR must be a string")],
)
def test_in_cidr_block_errors(db: Connection, cidr: Any, address: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        db.execute("SELECT in_cidr_block(?, ?)", (cidr, address))


# --- community id -------------------------------------------------------------------

def spec_community_id(saddr: str, daddr: str, sport: int, dport: int, proto: int, seed: int = 0) -> str:
    """Community ID v1 straight from the spec's description, for comparison."""
    src, dst = ipaddress.ip_address(saddr).packed, ipaddress.ip_address(daddr).packed
    if (len(src), src, sport) > (len(dst), dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    blob = seed.to_bytes(2, "big", signed=True) + src + dst + bytes([proto, 0])
    blob += sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return "1:" + base64.b64encode(hashlib.sha1(blob).digest()).decode()


COMMUNITY_VECTORS = [
    # (saddr, daddr, sport, dport, proto, seed, published value or None)
    ("66.35.250.204", "128.232.110.120", 80, 34855, 6, 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ("128.232.110.120", "66.35.250.204", 34855, 80, 6, 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ("8.8.8.8", "192.168.1.52", 53, 54585, 17, 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    ("192.168.1.52", "8.8.8.8", 54585, 53, 17, 1, "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    ("fe80::1", "fe80::2", 443, 50000, 6, 0, None),
    ("10.0.0.1", "10.0.0.1", 5000, 80, 17, -3, None),
    ("1.2.3.4", "::1", 1, 2, 132, 0, None),
]


@pytest.mark.parametrize("vector", COMMUNITY_VECTORS)
def test_community_id_v1(db: Connection, vector: tuple[Any, ...]) -> None:
    saddr, daddr, sport, dport, proto, seed, published = vector
    ours = one(db, "SELECT community_id_v1(?, ?, ?, ?, ?, ?)", saddr, daddr, sport, dport, proto, seed)
    assert ours == spec_community_id(saddr, daddr, sport, dport, proto, seed)
    if published is not None:
        assert ours == published
    strict = one(db, "SELECT community_id_v1_strict(?, ?, ?, ?, ?, ?)", saddr, daddr, sport, dport, proto, seed)
    assert strict == ours
    if seed == 0:
        assert one(db, "SELECT community_id_v1(?, ?, ?, ?, ?)", saddr, daddr, sport, dport, proto) == ours


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("192.168.1.52", "foo", 10, 53, 17, 0), "daddr cannot be parsed"),
        (("192.168.1.52", "192.168.1.1", 70000, 53, 17, 0), "ports must fit in 2 bytes"),
        (("192.168.1.52", "192.168.1.1", "10", 53, 17, 0), "ports must be integers"),
        (("192.168.1.52", "192.168.1.1", 10, 53, 256, 0), "protocol must fit in 1 byte"),
        (("192.168.1.52", "192.168.1.1", 10, 53, 17, 40000), "seed must fit in 2 bytes"),
        ((1, "192.168.1.1", 10, 53, 17, 0), "IPs must be strings"),
    ],
)
def test_community_id_bad_input(db: Connection, args: tuple[Any, ...], message: str) -> None:
    assert one(db, "SELECT community_id_v1(?, ?, ?, ?, ?, ?)", *args) is None
    with pytest.raises(QueryError, match=message):
        db.execute("SELECT community_id_v1_strict(?, ?, ?, ?, ?, ?)", args)


# --- hashing and encoding ------------------------------------------------------------

@pytest.mark.parametrize("name", ["md5", "sha1", "sha256"])
@pytest.mark.parametrize("text", ["", "hello", "héllo wörld", "x" * 10000])
def test_string_digests(db: Connection, name: str, text: str) -> None:
    assert one(db, f"SELECT {name}(?)", text) == hashlib.new(name, text.encode()).hexdigest()


def test_digest_of_null_and_number(db: Connection) -> None:
    assert one(db, "SELECT md5(NULL)") is None
    assert one(db, "SELECT sha1(42)") == hashlib.sha1(b"42").hexdigest()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT to_base64('hello')", "aGVsbG8="),
        ("SELECT to_base64('')", ""),
        ("SELECT to_base64(NULL)", None),
        ("SELECT from_base64('aGVsbG8=')", "hello"),
        ("SELECT from_base64('aGVsbG8')", "hello"),  # padding optional
        ("SELECT from_base64('aGVs' || char(10) || 'bG8=')", "hello"),  # line breaks ignored
        ("SELECT from_base64('not base64!')", ""),
        ("SELECT from_base64('a')", ""),
        ("SELECT conditional_to_base64('plain text ~')", "plain text ~"),
        ("SELECT conditional_to_base64('tab' || char(9))", base64.b64encode(b"tab\t").decode()),
        ("SELECT conditional_to_base64('caf' || char(233))", base64.b64encode("café".encode()).decode()),
        ("SELECT conditional_to_base64(NULL)", None),
    ],
)
def test_base64(db: Connection, sql: str, expected: Any) -> None:
    assert one(db, sql) == expected


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")))
def test_base64_round_trip(text: str) -> None:
    with Connection(tables={}) as conn:
        encoded = one(conn, "SELECT to_base64(?)", text)
        assert encoded == base64.b64encode(text.encode()).decode()
        assert one(conn, "SELECT from_base64(?)", encoded) == text


# --- filesystem -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "expected"),
    [("/usr/bin/ls", "/usr/bin"), ("/usr/bin/", "/usr/bin"), ("/ls", ""), ("ls", None)],
)
def test_parent_directory(db: Connection, path: str, expected: Any) -> None:
    assert one(db, "SELECT parent_directory(?)", path) == expected


def test_parent_directory_wants_text(db: Connection) -> None:
    with pytest.raises(QueryError, match="TEXT was expected"):
        db.execute("SELECT parent_directory(5)")


# --- math -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT sqrt(16)", 4.0),
        ("SELECT log(?)", 1.0),  # natural log, as osquery's
        ("SELECT log10(1000)", 3.0),
        ("SELECT exp(0)", 1.0),
        ("SELECT power(2, 10)", 1024.0),
        ("SELECT pi()", math.pi),
        ("SELECT sin(0)", 0.0),
        ("SELECT cos(0)", 1.0),
        ("SELECT tan(0)", 0.0),
        ("SELECT cot(1)", 1 / math.tan(1)),
        ("SELECT asin(1)", math.pi / 2),
        ("SELECT acos(1)", 0.0),
        ("SELECT atan(1)", math.pi / 4),
        ("SELECT degrees(?)", 180.0),
        ("SELECT radians(180)", math.pi),
    ],
)
def test_math(db: Connection, sql: str, expected: float) -> None:
    args = {"SELECT log(?)": (math.e,), "SELECT degrees(?)": (math.pi,)}.get(sql, ())
    assert one(db, sql, *args) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [("SELECT ceil(1.2)", 2), ("SELECT ceil(-1.2)", -1), ("SELECT floor(1.8)", 1), ("SELECT floor(-1.2)", -2),
     ("SELECT ceil(7)", 7), ("SELECT floor(NULL)", None), ("SELECT cot(NULL)", None)],
)
def test_rounding_returns_integers(db: Connection, sql: str, expected: Any) -> None:
    value = one(db, sql)
    assert value == expected
    assert type(value) is type(expected)


# --- versions -------------------------------------------------------------------

DPKG_ORDER = [  # each strictly less than the next (checked against Debian policy)
    ("1.0~rc1", "1.0"),
    ("1.0~~", "1.0~"),
    ("1.0", "1.0a"),
    ("1.0a", "1.0+"),
    ("1.0-1", "1.0-2"),
    ("1.0-2", "1.0-10"),
    ("2.0", "1:0.9"),
    ("1.9", "1.10"),
    ("1.0", "1.0.1"),
    ("1.2.3-1ubuntu1", "1.2.3-1ubuntu2"),
    ("7.6p1-4", "7.6p2-1"),
]


@pytest.mark.parametrize(("low", "high"), DPKG_ORDER)
def test_dpkg_order(db: Connection, low: str, high: str) -> None:
    assert compare_dpkg(low, high) < 0 < compare_dpkg(high, low)
    assert one(db, "SELECT version_compare(?, ?, 'DPKG')", low, high) == -1
    assert one(db, "SELECT version_compare(?, ?, 'dpkg')", high, low) == 1


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.00"), ("0:1.0", "1.0"), ("1.0-0", "1.0-0")])
def test_dpkg_equal(a: str, b: str) -> None:
    assert compare_dpkg(a, b) == 0


RPM_ORDER = [
    ("1.0~rc1", "1.0"),
    ("1.0", "1.0^git1"),
    ("1.0^git1", "1.0.1"),
    ("1.0", "1.0a"),  # rpm: leftover content wins
    ("1.a", "1.1"),  # numbers beat letters
    ("1.9", "1.10"),
    ("1.0-1.el8", "1.0-2.el8"),
    ("2.0-1", "1:1.0-1"),
    ("1.01", "1.2"),
]


@pytest.mark.parametrize(("low", "high"), RPM_ORDER)
def test_rhel_order(db: Connection, low: str, high: str) -> None:
    assert compare_rhel(low, high) < 0 < compare_rhel(high, low)
    assert one(db, "SELECT version_compare(?, ?, 'RHEL')", low, high) == -1


@pytest.mark.parametrize(("a", "b"), [("1.0", "1.0-5"), ("1.01", "1.1"), ("1_0", "1.0")])
def test_rhel_equal(a: str, b: str) -> None:
    assert compare_rhel(a, b) == 0


ARCH_ORDER = [
    ("1.0a", "1.0"),  # pacman: an alphabetic tail is a pre-release
    ("1.0", "1.0.1"),
    ("1.0-1", "1.0-2"),
    ("2.0-1", "1:1.0-1"),
    ("1.9", "1.10"),
]


@pytest.mark.parametrize(("low", "high"), ARCH_ORDER)
def test_arch_order(db: Connection, low: str, high: str) -> None:
    assert compare_arch(low, high) < 0 < compare_arch(high, low)
    assert one(db, "SELECT version_compare(?, ?, 'ARCH')", low, high) == -1


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("1.2.3", "1.2.3", 0), ("1.10", "1.9", 1), ("1.0", "1.0.1", -1), ("2.0", "10.0", -1), ("1.0~b", "1.0", -1)],
)
def test_generic_version_compare(db: Connection, a: str, b: str, expected: int) -> None:
    assert one(db, "SELECT version_compare(?, ?)", a, b) == expected
    assert (compare_generic(a, b) > 0) - (compare_generic(a, b) < 0) == expected


def test_version_compare_bad_flavour_and_nulls(db: Connection) -> None:
    assert one(db, "SELECT version_compare(NULL, '1')") is None
    with pytest.raises(QueryError, match="ARCH, DPKG or RHEL"):
        db.execute("SELECT version_compare('1', '2', 'MSI')")


@pytest.mark.parametrize(
    ("collation", "order"),
    [
        ("VERSION_DPKG", ["1.0~rc1", "1.0", "1.0-1", "1.0-2", "1.10", "2.0", "1:0.9"]),
        ("VERSION_RHEL", ["1.0~rc1", "1.0", "1.0^git1", "1.0.1", "1.10", "2.0", "1:0.9"]),
        ("VERSION_ARCH", ["1.0a", "1.0", "1.0.1", "1.10", "2.0", "1:0.9"]),
        ("VERSION", ["1.0~rc1", "1.0", "1.0.1", "1.9", "1.10", "2.0", "10.0"]),
    ],
)
def test_collations_sort(db: Connection, collation: str, order: list[str]) -> None:
    values = " UNION ALL ".join("SELECT ? AS v" for _ in order)
    shuffled = list(reversed(order))
    rows = db.execute(f"SELECT v FROM ({values}) ORDER BY v COLLATE {collation}", tuple(shuffled)).rows
    assert [r[0] for r in rows] == order

