"""The interactive prompt, driven through a pseudo-terminal with pexpect."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

HOSTQL = str(Path(sys.executable).parent / "hostql")
# prompt_toolkit draws the prompt's trailing space as a cursor movement, so
# the prompts are matched without it.
PROMPT = "hostql>"
CONTINUATION = r"\.\.\.>"
UP = "\x1b[A"


def plain(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


@pytest.fixture
def session(tmp_path: Path) -> Iterator[pexpect.spawn]:
    env = dict(os.environ, HOSTQL_HOME=str(tmp_path / "home"), TERM="xterm",
               # pexpect does not answer cursor-position requests.
               PROMPT_TOOLKIT_NO_CPR="1")
    child = pexpect.spawn(HOSTQL, ["shell"], env=env, timeout=20, encoding="utf-8", dimensions=(40, 150))
    try:
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)
        child.close()


def test_interactive_session(session: pexpect.spawn, tmp_path: Path) -> None:
    child = session
    child.expect("Using a virtual database. Need help, type '.help'")
    child.expect(PROMPT)

    # A statement over two lines: the continuation prompt, then the result.
    child.send("SELECT 40 + 2\r")
    child.expect(CONTINUATION)
    child.send("AS answer;\r")
    child.expect(r"\| answer \|")
    child.expect(r"\| 42     \|")
    child.expect(PROMPT)

    # A dot-command changes the output mode.
    child.send(".mode line\r")
    child.expect(PROMPT)
    child.send("SELECT 'hello' AS greeting;\r")
    child.expect("greeting = hello")
    child.expect(PROMPT)

    # History: the up arrow brings back the last line, which runs again.
    child.send(UP + "\r")
    child.expect("greeting = hello")
    child.expect(PROMPT)

    # Tab completes a unique table-name prefix.
    child.send("SELECT period FROM load_av\t")
    child.expect("erage")
    child.send(" WHERE period = '5m';\r")
    child.expect("period = 5m")
    child.expect(PROMPT)

    # An error is reported without the script-style line number.
    child.send("SELECT * FROM nope;\r")
    child.expect("Error: no such table: nope")
    child.expect(PROMPT)

    child.send(".quit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1  # a statement failed

    history = (tmp_path / "home" / ".history").read_text()
    assert "SELECT 'hello' AS greeting;" in history
    assert ".mode line" in history


def test_dot_command_completion_and_exit_code(session: pexpect.spawn) -> None:
    child = session
    child.expect(PROMPT)
    child.send(".tabl\t")
    child.expect("es")
    child.send(" load\r")
    child.expect("=> load_average")
    child.expect(PROMPT)
    child.send(".exit 7\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7


def test_end_of_input_exits_cleanly(session: pexpect.spawn) -> None:
    child = session
    child.expect(PROMPT)
    child.send("SELECT 1 AS one;\r")
    # Wait for the result, then the fresh prompt: the redrawn input line also
    # contains the prompt text, and an EOF sent before the prompt is reading
    # can be lost.
    child.expect(r"\| one \|")
    child.expect(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in plain(child.before or "")
