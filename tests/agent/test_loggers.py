"""Logger plugins write real files, print, and send to a real syslog daemon."""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hostql.agent.flags import FlagValues
from hostql.agent.logformat import status_line
from hostql.agent.loggers import (
    LoggerError,
    build_loggers,
    parse_plugin_names,
    register,
    unregister,
)
from hostql.agent.loggers import filesystem as fs_module
from hostql.agent.loggers.base import parse_mode
from hostql.agent.loggers.filesystem import FilesystemLogger
from hostql.agent.loggers.glog import GlogFiles, glog_line
from hostql.agent.loggers.rotate import GZIP, ZSTD
from hostql.agent.loggers.stdout import StdoutLogger
from hostql.agent.loggers.syslog import SyslogLogger, syslog_message
from hostql.agent.store import Store


def result(n: int) -> str:
    return f'{{"name":"q","counter":{n},"columns":{{"n":"{n:04d}"}},"action":"added"}}'


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# filesystem logger: files and modes


def test_results_and_snapshots_go_to_their_own_files(tmp_path: Path) -> None:
    logs = tmp_path / "var" / "log" / "osquery"
    logger = FilesystemLogger(logs)
    assert (logs / "osqueryd.results.log").read_bytes() == b""  # created at start, as osqueryd does
    assert not (logs / "osqueryd.snapshots.log").exists()
    snap = '{"snapshot":[{"a":"1"}],"action":"snapshot","name":"s"}'
    assert logger.deliver([(1, "result", result(1)), (2, "snapshot", snap), (3, "result", '{"ü":"é"}')])
    assert logger.deliver([(4, "result", result(4))])
    assert (logs / "osqueryd.results.log").read_text("utf-8") == f'{result(1)}\n{{"ü":"é"}}\n{result(4)}\n'
    assert (logs / "osqueryd.snapshots.log").read_text("utf-8") == snap + "\n"
    logger.close()


def test_files_get_logger_mode_whatever_the_umask(tmp_path: Path) -> None:
    with umask(0o077):
        logger = FilesystemLogger(tmp_path)
        assert logger.deliver([(1, "result", result(1)), (2, "snapshot", "{}")])
    for name in ("osqueryd.results.log", "osqueryd.snapshots.log"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640


def test_logger_mode_and_path_come_from_flags(tmp_path: Path) -> None:
    flags = FlagValues({"logger_path": str(tmp_path / "out"), "logger_mode": "0600"})
    [logger] = build_loggers(["filesystem"], flags)
    assert isinstance(logger, FilesystemLogger)
    assert logger.deliver([(1, "result", result(1))])
    assert stat.S_IMODE((tmp_path / "out" / "osqueryd.results.log").stat().st_mode) == 0o600


def test_parse_mode() -> None:
    assert parse_mode("0640") == 0o640
    assert parse_mode("600") == 0o600
    assert parse_mode(0o644) == 0o644
    with pytest.raises(LoggerError):
        parse_mode("0689")
    with pytest.raises(LoggerError):
        parse_mode("rw-r-----")


def test_write_failure_returns_false_and_logs_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with caplog.at_level(logging.ERROR, logger="hostql.agent.loggers"):
        logger = FilesystemLogger(blocker / "logs")
        assert logger.deliver([(1, "result", result(1))]) is False
        assert logger.deliver([(1, "result", result(1))]) is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "one error per outage, not one per retry"
    assert "not-a-dir" in errors[0].getMessage()


def test_retry_after_a_failed_write_does_not_double_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = FilesystemLogger(tmp_path)
    real_write = fs_module._write_all
    calls = {"n": 0}

    def write_then_fail(fd: int, data: bytes | bytearray) -> None:
        real_write(fd, data)  # the bytes reach the file, then the disk "fills up"
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fs_module, "_write_all", write_then_fail)
    batch = [(1, "result", result(1)), (2, "result", result(2))]
    assert logger.deliver(batch) is False
    assert calls["n"] == 1
    monkeypatch.setattr(fs_module, "_write_all", real_write)
    assert logger.deliver(batch) is True
    assert logger.deliver([(3, "result", result(3))]) is True
    assert (tmp_path / "osqueryd.results.log").read_text() == f"{result(1)}\n{result(2)}\n{result(3)}\n"


# rotation


def _content(path: Path) -> str:
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes()).decode()
    if path.name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes()).decode()
    return path.read_text()


@pytest.mark.parametrize("method", [GZIP, ZSTD])
def test_rotation_compresses_older_files_and_keeps_max_files(tmp_path: Path, method: str) -> None:
    suffix = ".gz" if method == GZIP else ".zst"
    line_size = len(result(0)) + 1
    logger = FilesystemLogger(
        tmp_path, rotate=True, rotate_size=3 * line_size, rotate_max_files=3, compression=method, mode=0o640
    )
    written = [result(n) for n in range(20)]
    # One line per batch for a while, then the rest in one batch: the size is
    # checked before every line, also inside a batch.
    for n in range(8):
        assert logger.deliver([(n, "result", written[n])])
    assert logger.deliver([(n, "result", written[n]) for n in range(8, 20)])

    base = tmp_path / "osqueryd.results.log"
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("osqueryd.results"))
    assert names == sorted(
        [
            "osqueryd.results.log",
            "osqueryd.results.log.1",
            f"osqueryd.results.log.2{suffix}",
            f"osqueryd.results.log.3{suffix}",
        ]
    )
    # 20 lines, 3 per file: the current file has 2, each rotated one 3.
    chunks = [
        _content(tmp_path / f"osqueryd.results.log.3{suffix}"),
        _content(tmp_path / f"osqueryd.results.log.2{suffix}"),
        _content(tmp_path / "osqueryd.results.log.1"),
        base.read_text(),
    ]
    assert [len(c.splitlines()) for c in chunks] == [3, 3, 3, 2]
    assert "".join(chunks) == "".join(line + "\n" for line in written[-11:])
    for name in names:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
    assert not list(tmp_path.glob("*.tmp"))


def test_no_rotation_unless_enabled(tmp_path: Path) -> None:
    logger = FilesystemLogger(tmp_path, rotate=False, rotate_size=10)
    assert logger.deliver([(n, "result", result(n)) for n in range(5)])
    assert sorted(p.name for p in tmp_path.iterdir() if "results" in p.name) == ["osqueryd.results.log"]


def test_snapshots_rotate_separately(tmp_path: Path) -> None:
    logger = FilesystemLogger(tmp_path, rotate=True, rotate_size=1, rotate_max_files=2, compression=GZIP)
    assert logger.deliver([(n, "snapshot", result(n)) for n in range(4)])
    assert (tmp_path / "osqueryd.snapshots.log").read_text() == result(3) + "\n"
    assert (tmp_path / "osqueryd.snapshots.log.1").read_text() == result(2) + "\n"
    assert _content(tmp_path / "osqueryd.snapshots.log.2.gz") == result(1) + "\n"
    assert not (tmp_path / "osqueryd.snapshots.log.3.gz").exists()
    assert not (tmp_path / "osqueryd.results.log.1").exists()


# crash recovery


def test_recover_finds_lines_written_before_a_crash_and_cuts_a_torn_line(tmp_path: Path) -> None:
    first = FilesystemLogger(tmp_path)
    assert first.deliver([(1, "result", result(1)), (2, "result", result(2))])  # marked delivered
    # The crash: batch 3..5 reached the file but was never marked delivered,
    # and a later write was cut in the middle of a line.
    assert first.deliver([(3, "result", result(3)), (4, "snapshot", '{"s":1}'), (5, "result", result(5))])
    with open(tmp_path / "osqueryd.results.log", "ab") as f:
        f.write(result(6).encode()[:17])

    again = FilesystemLogger(tmp_path)
    pending = [
        (3, "result", result(3)),
        (4, "snapshot", '{"s":1}'),
        (5, "result", result(5)),
        (6, "result", result(6)),
        (7, "snapshot", '{"s":2}'),
    ]
    assert again.recover(pending) == [3, 4, 5]
    assert (tmp_path / "osqueryd.results.log").read_text() == "".join(f"{result(n)}\n" for n in (1, 2, 3, 5))
    # The daemon marks 3, 4, 5 delivered and delivers the rest: no line twice.
    assert again.deliver([row for row in pending if row[0] > 5])
    assert (tmp_path / "osqueryd.results.log").read_text() == "".join(f"{result(n)}\n" for n in (1, 2, 3, 5, 6))
    assert (tmp_path / "osqueryd.snapshots.log").read_text() == '{"s":1}\n{"s":2}\n'


KILLED_CHILD = """
import os, signal, sys
from hostql.agent.loggers.filesystem import FilesystemLogger
from hostql.agent.store import Store

store = Store(sys.argv[1])
logger = FilesystemLogger(sys.argv[2])
with store.transaction():
    store.enqueue(["filesystem"], "result", [f'{{"n":{n}}}' for n in range(5)])
rows = store.pending("filesystem")
assert logger.deliver(rows[:2])
store.delivered([i for i, _, _ in rows[:2]])
assert logger.deliver(rows[2:])
os.kill(os.getpid(), signal.SIGKILL)  # before the daemon could mark rows 3..5 delivered
"""


def test_kill_9_between_write_and_delivered(tmp_path: Path) -> None:
    db, logs = tmp_path / "state.db", tmp_path / "logs"
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(db), str(logs)], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    store = Store(db)
    pending = store.pending("filesystem")
    assert [line for _, _, line in pending] == ['{"n":2}', '{"n":3}', '{"n":4}']
    logger = FilesystemLogger(logs)
    done = logger.recover(pending)
    assert done == [i for i, _, _ in pending]
    store.delivered(done)
    assert store.pending_count("filesystem") == 0
    assert (logs / "osqueryd.results.log").read_text() == "".join(f'{{"n":{n}}}\n' for n in range(5))
    store.close()


def test_recover_finds_a_written_prefix_only(tmp_path: Path) -> None:
    logger = FilesystemLogger(tmp_path)
    assert logger.deliver([(1, "result", result(1)), (2, "result", result(2))])
    pending = [(2, "result", result(2)), (3, "result", result(3))]
    assert FilesystemLogger(tmp_path).recover(pending) == [2]
    # Lines that are in the file but not at its end were not this batch.
    assert FilesystemLogger(tmp_path).recover([(1, "result", result(1))]) == []
    assert FilesystemLogger(tmp_path).recover([(9, "result", result(9))]) == []


def test_recover_does_not_match_a_partial_line(tmp_path: Path) -> None:
    (tmp_path / "osqueryd.results.log").write_text('{"a":1}\n{"x":"abc"}\n')
    assert FilesystemLogger(tmp_path).recover([(1, "result", 'c"}')]) == []
    # the bytes match, but "1}" is the end of a line, not a whole line
    assert FilesystemLogger(tmp_path).recover([(1, "result", "1}"), (2, "result", '{"x":"abc"}')]) == []
    assert FilesystemLogger(tmp_path).recover([(1, "result", '{"a":1}'), (2, "result", '{"x":"abc"}')]) == [1, 2]


def test_recover_across_a_rotation_in_the_middle_of_a_batch(tmp_path: Path) -> None:
    line_size = len(result(0)) + 1
    logger = FilesystemLogger(tmp_path, rotate=True, rotate_size=2 * line_size, compression=GZIP)
    assert logger.deliver([(1, "result", result(1))])
    # crash after this batch was written: line 2 ended in .1, line 3 in the new file
    assert logger.deliver([(2, "result", result(2)), (3, "result", result(3))])
    assert (tmp_path / "osqueryd.results.log.1").read_text() == f"{result(1)}\n{result(2)}\n"
    again = FilesystemLogger(tmp_path, rotate=True, rotate_size=2 * line_size, compression=GZIP)
    assert again.recover([(2, "result", result(2)), (3, "result", result(3)), (4, "result", result(4))]) == [2, 3]


def test_recover_on_an_empty_or_missing_file(tmp_path: Path) -> None:
    logger = FilesystemLogger(tmp_path)
    (tmp_path / "osqueryd.results.log").unlink()
    assert logger.recover([(1, "result", result(1))]) == []
    (tmp_path / "osqueryd.results.log").write_bytes(b'{"torn')
    assert logger.recover([(1, "result", result(1))]) == []
    assert (tmp_path / "osqueryd.results.log").read_bytes() == b""


# glog status files

GLOG_LINE = re.compile(r"^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d{6} {1,5}\d+ [^ :]+:\d+\] .*$")


def test_glog_line_layout() -> None:
    created = time.mktime((2024, 1, 2, 10, 4, 5, 0, 0, -1)) + 0.012345
    line = glog_line(1, created, 4242, "scheduler.py", 88, "Executing scheduled query")
    assert line == "W0102 10:04:05.012345  4242 scheduler.py:88] Executing scheduled query\n"
    assert glog_line(0, created, 7, "a.py", 1, "m").startswith("I0102 10:04:05.012345     7 a.py:1] ")
    assert glog_line(3, created, 123456, "a.py", 1, "m").startswith("F0102 10:04:05.012345 123456 a.py:1] ")
    assert GLOG_LINE.match(line.rstrip("\n"))


def test_glog_files_symlinks_and_severity_fanout(tmp_path: Path) -> None:
    glog = GlogFiles(tmp_path, mode=0o640, pid=4321)
    now = time.time()
    glog.write(0, now, 11, "a.py", 1, "info message")
    glog.write(1, now, 12, "b.py", 2, "warning message")
    glog.write(2, now, 13, "c.py", 3, "error message")
    glog.close()

    expected = {"INFO": ["info", "warning", "error"], "WARNING": ["warning", "error"], "ERROR": ["error"]}
    for level, words in expected.items():
        link = tmp_path / f"osqueryd.{level}"
        assert link.is_symlink()
        target = os.readlink(link)
        assert re.fullmatch(rf"osqueryd\.{level}\.\d{{8}}-\d{{6}}\.4321", target), target
        current = glog.path(level)
        assert current is not None and target == current.name
        assert stat.S_IMODE((tmp_path / target).stat().st_mode) == 0o640
        lines = (tmp_path / target).read_text().splitlines()
        assert lines[0].startswith("Log file created at: ")
        assert lines[1].startswith("Running on machine: ")
        assert lines[2].startswith("Log line format: [IWEF]mmdd")
        body = lines[3:]
        assert [line.rsplit("] ", 1)[1] for line in body] == [f"{w} message" for w in words]
        for line in body:
            assert GLOG_LINE.match(line), line
    assert not (tmp_path / "osqueryd.FATAL").exists()


def test_glog_falls_back_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    GlogFiles(blocker / "logs").write(2, time.time(), 1, "x.py", 9, "cannot write files")
    err = capsys.readouterr().err
    assert err.startswith("E") and err.endswith(" x.py:9] cannot write files\n")


def test_filesystem_logger_writes_status_rows_as_glog(tmp_path: Path) -> None:
    logger = FilesystemLogger(tmp_path)
    assert logger.wants_status is False
    line = status_line("host", 1_704_189_600, 1, "config.py", 12, "bad option", "5.23.0")
    assert logger.deliver([(1, "status", line)])
    warning = (tmp_path / "osqueryd.WARNING").read_text().splitlines()[-1]
    assert GLOG_LINE.match(warning)
    assert warning.endswith(" config.py:12] bad option")
    assert (tmp_path / "osqueryd.results.log").read_text() == ""


# stdout


def test_stdout_prints_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    logger = StdoutLogger()
    status = status_line("host", 1_704_189_600, 2, "runner.py", 40, "query failed", "5.23.0")
    assert logger.deliver([(1, "result", result(1)), (2, "snapshot", '{"s":1}'), (3, "status", status)])
    out = capsys.readouterr().out
    assert out == f'{result(1)}\n{{"s":1}}\nseverity=2 location=runner.py:40 message=query failed\n'
    assert logger.recover([(1, "result", result(1))]) == []


def test_stdout_failure_keeps_lines(tmp_path: Path) -> None:
    handle = open(tmp_path / "out.txt", "w")  # noqa: SIM115
    handle.close()
    assert StdoutLogger(stream=handle).deliver([(1, "result", result(1))]) is False


# syslog


def test_syslog_message_framing() -> None:
    now = time.mktime((2024, 3, 5, 7, 8, 9, 0, 0, -1))
    assert syslog_message(19, 6, "hostql", 77, "hello", now) == b"<158>Mar  5 07:08:09 hostql[77]: hello"


def _receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    return sock


def test_syslog_sends_datagrams_to_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "log"
    receiver = _receiver(path)
    logger = SyslogLogger(socket_path=str(path), clock=lambda: time.mktime((2024, 3, 15, 7, 8, 9, 0, 0, -1)))
    status = status_line("host", 1, 1, "scheduler.py", 5, "slow query", "5.23.0")
    assert logger.deliver([(1, "result", result(1)), (2, "status", status)])
    pid = os.getpid()
    assert receiver.recv(65536) == f"<158>Mar 15 07:08:09 hostql[{pid}]: {result(1)}".encode()
    assert receiver.recv(65536) == (
        f"<156>Mar 15 07:08:09 hostql[{pid}]: severity=1 location=scheduler.py:5 message=slow query".encode()
    )
    cee = SyslogLogger(socket_path=str(path), facility=3, prepend_cee=True, clock=lambda: 0.0)
    assert cee.deliver([(1, "result", "{}")])
    assert re.fullmatch(rb"<30>\w{3} [ \d]\d \d\d:\d\d:\d\d hostql\[\d+\]: @cee:\{\}", receiver.recv(65536))
    logger.close()
    cee.close()
    receiver.close()


def test_syslog_facility_out_of_range_falls_back_to_local3() -> None:
    assert SyslogLogger(facility=24).facility == 19
    assert SyslogLogger(facility=-1).facility == 19
    assert SyslogLogger(facility=0).facility == 0


def test_syslog_without_a_daemon_keeps_lines_then_delivers_once(tmp_path: Path) -> None:
    path = tmp_path / "log"
    logger = SyslogLogger(socket_path=str(path))
    batch = [(1, "result", result(1)), (2, "result", result(2))]
    assert logger.deliver(batch) is False
    receiver = _receiver(path)
    assert logger.deliver(batch) is True
    got = [receiver.recv(65536).split(b": ", 1)[1] for _ in range(2)]
    assert got == [result(1).encode(), result(2).encode()]
    receiver.setblocking(False)
    with pytest.raises(BlockingIOError):
        receiver.recv(65536)
    logger.close()
    receiver.close()


RSYSLOG_CONF = """\
global(workDirectory="{work}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" RateLimit.Interval="0")
template(name="fields" type="string"
         string="%syslogfacility-text%|%syslogseverity-text%|%programname%|%procid%|%msg:2:$%\\n")
*.* action(type="omfile" file="{out}" template="fields")
"""


def test_syslog_against_a_real_rsyslogd(tmp_path: Path) -> None:
    rsyslogd = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
    if rsyslogd is None:
        pytest.fail("rsyslogd is missing: install Debian package rsyslog (make system-deps)")
    work = tmp_path / "w"
    work.mkdir()
    sock, out = tmp_path / "s.sock", tmp_path / "out.log"
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=work, sock=sock, out=out))
    proc = subprocess.Popen(
        [rsyslogd, "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid"), "-n"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "rsyslogd exited"
            assert time.monotonic() < deadline, "rsyslogd did not create its socket"
            time.sleep(0.05)
        logger = SyslogLogger(socket_path=str(sock))
        status = status_line("host", 1, 2, "runner.py", 31, "table failed", "5.23.0")
        assert logger.deliver([(1, "result", result(1)), (2, "status", status)])
        logger.close()
        expected = [
            f"local3|info|hostql|{os.getpid()}|{result(1)}",
            f"local3|err|hostql|{os.getpid()}|severity=2 location=runner.py:31 message=table failed",
        ]
        lines: list[str] = []
        while time.monotonic() < deadline:
            # rsyslogd logs its own start too; keep what hostql sent.
            lines = [x for x in out.read_text().splitlines() if "|hostql|" in x] if out.exists() else []
            if len(lines) >= 2:
                break
            time.sleep(0.05)
        assert lines == expected
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


# registry


def test_build_loggers_by_name(tmp_path: Path) -> None:
    flags = FlagValues({"logger_path": str(tmp_path)})
    loggers = build_loggers(["filesystem", "stdout", "syslog", "stdout"], flags)
    assert [type(x) for x in loggers] == [FilesystemLogger, StdoutLogger, SyslogLogger]
    assert [x.name for x in loggers] == ["filesystem", "stdout", "syslog"]


def test_unknown_logger_names_are_clear_errors() -> None:
    with pytest.raises(LoggerError, match=r"unknown logger plugin 'nope' \(available: .*filesystem"):
        build_loggers(["stdout", "nope"], None)
    with pytest.raises(LoggerError, match="does not provide"):
        build_loggers(["kafka_producer"], None)
    with pytest.raises(LoggerError, match="no logger plugin"):
        build_loggers([" , "], None)


def test_tls_needs_the_remote_client_in_the_context() -> None:
    with pytest.raises(LoggerError, match=r"logger plugin 'tls': .*remote client"):
        build_loggers(["tls"], None)


def test_registered_factories_get_flags_and_context() -> None:
    seen: dict[str, object] = {}

    def factory(flags: FlagValues | None, context: dict[str, object]) -> StdoutLogger:
        seen.update(context)
        return StdoutLogger()

    register("test_custom", factory)
    try:
        [logger] = build_loggers(["test_custom"], None, {"store": "S"})
    finally:
        unregister("test_custom")
    assert isinstance(logger, StdoutLogger)
    assert seen == {"store": "S"}
    with pytest.raises(LoggerError, match="unknown"):
        build_loggers(["test_custom"], None)


def test_parse_plugin_names() -> None:
    assert parse_plugin_names("filesystem, tls,,filesystem") == ["filesystem", "tls"]
