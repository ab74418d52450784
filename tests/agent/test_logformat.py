"""Log lines are byte-for-byte what osqueryd writes (osquery-reference §3)."""

from __future__ import annotations

import json

import pytest

from hostql.agent.logformat import (
    LineContext,
    batch_line,
    calendar_time,
    escape_nonprintable,
    event_lines,
    format_double,
    snapshot_event_lines,
    snapshot_line,
    status_line,
)

CTX = LineContext(name="pack_it-compliance_mounts", host_identifier="myhost", unix_time=1462228052,
                  epoch=0, counter=3, decorations={"host_uuid": "ABC"})


def test_calendar_time_pads_day_of_month_with_a_space() -> None:
    assert calendar_time(1462228052) == "Mon May  2 22:27:32 2016 UTC"
    assert calendar_time(1704189600) == "Tue Jan  2 10:00:00 2024 UTC"
    assert calendar_time(1700000000) == "Tue Nov 14 22:13:20 2023 UTC"


def test_event_line_matches_osquery_exactly() -> None:
    [line] = event_lines(CTX, [], [{"path": "/", "device": "/dev/sda1"}])
    assert line == (
        '{"name":"pack_it-compliance_mounts","hostIdentifier":"myhost",'
        '"calendarTime":"Mon May  2 22:27:32 2016 UTC","unixTime":1462228052,"epoch":0,"counter":3,'
        '"numerics":false,"decorations":{"host_uuid":"ABC"},'
        '"columns":{"device":"/dev/sda1","path":"/"},"action":"added"}'
    )


def test_removed_lines_come_before_added() -> None:
    lines = event_lines(CTX, [{"a": 1}], [{"a": 2}])
    assert [json.loads(x)["action"] for x in lines] == ["removed", "added"]


def test_values_are_strings_unless_numerics() -> None:
    row = {"i": 5, "d": 2.0, "t": "x", "n": None}
    [line] = event_lines(CTX, [], [row])
    assert json.loads(line)["columns"] == {"d": "2.0", "i": "5", "n": "", "t": "x"}
    numeric = LineContext("q", "h", 1, 0, 0, numerics=True)
    [line] = event_lines(numeric, [], [row])
    assert '"columns":{"d":2.0,"i":5,"n":"","t":"x"}' in line
    assert '"numerics":true' in line


def test_no_decorations_key_without_decorations() -> None:
    plain = LineContext("q", "h", 1, 0, 0)
    [line] = event_lines(plain, [], [{"a": "1"}])
    assert "decorations" not in line


def test_top_level_decorations() -> None:
    ctx = LineContext("q", "h", 1, 0, 0, decorations={"host_uuid": "U"}, decorations_top_level=True)
    [line] = event_lines(ctx, [], [{"a": "1"}])
    assert json.loads(line)["host_uuid"] == "U"
    assert "decorations" not in json.loads(line)


def test_batch_format() -> None:
    line = batch_line(CTX, [{"a": "1"}], [{"a": "2"}])
    assert line.startswith('{"diffResults":{"removed":[{"a":"1"}],"added":[{"a":"2"}]},"name":"pack_it')
    assert line.endswith('"numerics":false,"decorations":{"host_uuid":"ABC"}}')


def test_snapshot_formats() -> None:
    line = snapshot_line(CTX, [{"b": 2, "a": 1}])
    assert line.startswith('{"snapshot":[{"a":"1","b":"2"}],"action":"snapshot","name":')
    assert snapshot_event_lines(CTX, []) == []
    [event] = snapshot_event_lines(CTX, [{"a": 1}])
    assert event.endswith('"columns":{"a":"1"},"action":"snapshot"}')


def test_status_line_key_order() -> None:
    line = status_line("myhost", 1704189600, 0, "scheduler.cpp", 102, "Executing scheduled query x", "5.23.0",
                       {"host_uuid": "U"})
    assert line == (
        '{"hostIdentifier":"myhost","calendarTime":"Tue Jan  2 10:00:00 2024 UTC","unixTime":1704189600,'
        '"severity":0,"filename":"scheduler.cpp","line":102,"message":"Executing scheduled query x",'
        '"version":"5.23.0","decorations":{"host_uuid":"U"}}'
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("plain", "plain"), ("a\nb", "a\\x0Ab"), ("tab\t", "tab\\x09"), ("héllo ✓", "héllo ✓"), ("\x1f", "\\x1F")],
)
def test_control_bytes_are_escaped(raw: str, expected: str) -> None:
    assert escape_nonprintable(raw) == expected


@pytest.mark.parametrize(("value", "text"), [(2.0, "2.0"), (0.5, "0.5"), (1 / 3, "0.333333333333333"), (-1.0, "-1.0")])
def test_doubles(value: float, text: str) -> None:
    assert format_double(value) == text
