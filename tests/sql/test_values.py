"""Cell values are typed per declared column type, as osquery types them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostql.sql.values import to_double, to_integer, to_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        (" 42 ", 42),
        ("-7", -7),
        ("0x1f", 31),
        ("0X1F", 31),
        ("017", 15),
        ("-017", -15),
        ("0", 0),
        ("", None),
        ("   ", None),
        ("12abc", None),
        ("089", None),
        (True, 1),
        (3.9, 3),
        (b"12", 12),
    ],
)
def test_to_integer(raw: object, expected: int | None) -> None:
    assert to_integer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2.5", 2.5), ("1e3", 1000.0), ("", None), ("x", None), (3, 3.0), (b"0.5", 0.5)],
)
def test_to_double(raw: object, expected: float | None) -> None:
    assert to_double(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [(5, "5"), (True, "1"), (b"caf\xc3\xa9", "café"), (2.5, "2.5")])
def test_to_text(raw: object, expected: str) -> None:
    assert to_text(raw) == expected


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_integers_round_trip_through_text(value: int) -> None:
    assert to_integer(str(value)) == value
    assert to_integer(hex(value) if value >= 0 else "-" + hex(-value)) == value


@given(st.text())
def test_text_never_raises(value: str) -> None:
    to_integer(value)
    to_double(value)
    assert to_text(value) == value
