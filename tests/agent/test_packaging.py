"""The shipped systemd unit and flagfile work with the agent as it is."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from hostql.agent.flags import parse_flagfile

PACKAGING = Path(__file__).resolve().parent.parent.parent / "packaging"


def test_unit_runs_the_agent_with_the_shipped_flagfile() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(PACKAGING / "hostql-agent.service")
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[1:3] == ["agent", "--flagfile"]
    assert argv[3] == "/etc/hostql/hostql.flags"
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_shipped_flagfile_parses() -> None:
    values = parse_flagfile(PACKAGING / "hostql.flags")
    assert values.get("config_path") == "/etc/hostql/osquery.conf"
    assert values.get("logger_plugin") == "filesystem"
    assert values.get("database_path") == "/var/lib/hostql/hostql.db"
