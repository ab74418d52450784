"""Python log records become osquery status lines: outbox JSON and glog files."""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostql.agent.flags import FlagValues
from hostql.agent.loggers.filesystem import FilesystemLogger
from hostql.agent.loggers.glog import GlogFiles
from hostql.agent.loggers.stdout import StdoutLogger
from hostql.agent.status import (
    StatusHandler,
    install_status_logging,
    remove_status_logging,
    severity_of,
)
from hostql.agent.store import Store

NAME = "hostql.tests.status"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def log() -> Iterator[logging.Logger]:
    logger = logging.getLogger(NAME)
    logger.setLevel(logging.DEBUG)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def _flush(log: logging.Logger) -> None:
    for handler in log.handlers:
        handler.flush()


def _statuses(store: Store, sink: str) -> list[dict[str, object]]:
    rows = store.pending(sink)
    assert all(kind == "status" for _, kind, _ in rows)
    return [json.loads(line) for _, _, line in rows]


def _here() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


@pytest.mark.parametrize(
    ("level", "verbose", "expected"),
    [
        (logging.DEBUG, False, None),
        (logging.DEBUG, True, 0),
        (logging.INFO, False, 0),
        (logging.WARNING, False, 1),
        (logging.ERROR, False, 2),
        (logging.CRITICAL, False, 3),
        (logging.ERROR + 5, False, 2),
    ],
)
def test_severity_of(level: int, verbose: bool, expected: int | None) -> None:
    assert severity_of(level, verbose) == expected


def test_records_become_json_status_lines_in_the_outbox(store: Store, log: logging.Logger) -> None:
    log.addHandler(
        StatusHandler(
            version="5.23.0",
            host_identifier=lambda: "myhost",
            store=store,
            sinks=["tls", "stdout"],
            decorations={"host_uuid": "u-1"},
        )
    )
    info_line = _here() + 1
    log.info("Executing scheduled query %s", "pack_x")
    warning_line = _here() + 1
    log.warning("slow")
    error_line = _here() + 1
    log.error("broken")
    critical_line = _here() + 1
    log.critical("fatal")
    log.debug("not without --verbose")
    assert store.pending("tls") == []  # asynchronous, as in osqueryd: waiting for a flush
    _flush(log)

    tls = _statuses(store, "tls")
    assert _statuses(store, "stdout") == tls
    assert [(s["severity"], s["line"], s["message"]) for s in tls] == [
        (0, info_line, "Executing scheduled query pack_x"),
        (1, warning_line, "slow"),
        (2, error_line, "broken"),
        (3, critical_line, "fatal"),
    ]
    first = tls[0]
    assert list(first) == [
        "hostIdentifier", "calendarTime", "unixTime", "severity", "filename", "line", "message", "version",
        "decorations",
    ]  # fmt: skip
    assert first["hostIdentifier"] == "myhost"
    assert first["filename"] == "test_status.py"
    assert first["version"] == "5.23.0"
    assert first["decorations"] == {"host_uuid": "u-1"}
    assert isinstance(first["unixTime"], int)
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} UTC", str(first["calendarTime"]))
    assert store.pending("filesystem") == []


def test_min_status_filters_records(store: Store, log: logging.Logger) -> None:
    log.addHandler(StatusHandler(version="v", store=store, sinks=["tls"], min_status=2))
    log.info("info")
    log.warning("warning")
    log.error("error")
    log.critical("critical")
    _flush(log)
    assert [s["message"] for s in _statuses(store, "tls")] == ["error", "critical"]


def test_verbose_records_debug_as_info(store: Store, log: logging.Logger) -> None:
    log.addHandler(StatusHandler(version="v", store=store, sinks=["tls"], verbose=True))
    log.debug("detail")
    _flush(log)
    assert [(s["severity"], s["message"]) for s in _statuses(store, "tls")] == [(0, "detail")]


def test_exception_text_is_kept(store: Store, log: logging.Logger) -> None:
    log.addHandler(StatusHandler(version="v", store=store, sinks=["tls"]))
    try:
        raise ValueError("bad row")
    except ValueError:
        log.exception("table failed")
    _flush(log)
    [status] = _statuses(store, "tls")
    assert status["message"] == "table failed: ValueError: bad row"
    assert status["severity"] == 2


def test_glog_files_get_the_same_records(tmp_path: Path, log: logging.Logger) -> None:
    glog = GlogFiles(tmp_path / "logs")
    log.addHandler(StatusHandler(version="v", glog=glog, min_status=1))
    log.info("dropped by min_status")
    line = _here() + 1
    log.warning("disk almost full")
    glog.close()
    [warning] = (tmp_path / "logs" / "osqueryd.WARNING").read_text().splitlines()[3:]  # after glog's header
    assert re.fullmatch(
        rf"W\d{{4}} \d\d:\d\d:\d\d\.\d{{6}} {{1,5}}\d+ test_status\.py:{line}\] disk almost full", warning
    )
    assert "dropped" not in (tmp_path / "logs" / "osqueryd.INFO").read_text()


def test_install_wires_flags_loggers_glog_and_outbox(tmp_path: Path, store: Store, log: logging.Logger) -> None:
    flags = FlagValues({"logger_path": str(tmp_path / "logs"), "logger_min_status": "1"})
    fs = FilesystemLogger(tmp_path / "logs")
    out = StdoutLogger()
    handler = install_status_logging(
        flags, version="5.23.0", host_identifier="h", store=store, loggers=[fs, out], logger_name=NAME
    )
    try:
        assert handler.sinks == ["stdout"]  # the filesystem logger writes glog itself
        assert handler.glog is fs.glog
        assert handler.min_status == 1
        assert log.level == logging.INFO
        log.info("below min status")
        log.error("query failed")
    finally:
        remove_status_logging(handler, NAME)
    log.error("after removal")
    assert [s["message"] for s in _statuses(store, "stdout")] == ["query failed"]
    assert store.pending("filesystem") == []
    error_file = (tmp_path / "logs" / "osqueryd.ERROR").read_text()
    assert error_file.count("] query failed\n") == 1
    assert "after removal" not in error_file
    fs.close()


def test_outbox_statuses_reach_stdout(store: Store, log: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    log.addHandler(StatusHandler(version="v", store=store, sinks=["stdout"]))
    line = _here() + 1
    log.warning("config option ignored")
    _flush(log)
    rows = store.pending("stdout")
    assert StdoutLogger().deliver(rows)
    store.delivered([i for i, _, _ in rows])
    assert capsys.readouterr().out == f"severity=1 location=test_status.py:{line} message=config option ignored\n"
    assert store.pending_count("stdout") == 0


def test_a_failing_store_keeps_lines_buffered(tmp_path: Path, store: Store, log: logging.Logger) -> None:
    broken = Store(tmp_path / "s.db")
    broken.close()
    handler = StatusHandler(version="v", store=broken, sinks=["tls"])
    log.addHandler(handler)
    log.error("still fine")
    assert handler.flush_to_store() is False
    handler.flush()  # what logging.shutdown calls: must not raise
    assert handler.pending() == 1
    handler.store = store
    assert handler.flush_to_store() is True
    assert handler.pending() == 0
    assert [s["message"] for s in _statuses(store, "tls")] == ["still fine"]


def test_sync_flushes_each_record(store: Store, log: logging.Logger) -> None:
    log.addHandler(StatusHandler(version="v", store=store, sinks=["tls"], sync=True))
    log.warning("now")
    assert [s["message"] for s in _statuses(store, "tls")] == ["now"]


def test_logging_inside_a_store_transaction_does_not_deadlock(tmp_path: Path, log: logging.Logger) -> None:
    # Its own store, left open on failure: closing it would wait for the stuck threads.
    store = Store(tmp_path / "deadlock.db")
    handler = StatusHandler(version="v", store=store, sinks=["tls"], sync=True)
    log.addHandler(handler)
    in_transaction = threading.Event()

    def scheduled_run() -> None:
        with store.transaction():
            store.put("queries", "q", "[]")
            in_transaction.set()
            time.sleep(0.2)  # meanwhile another thread logs and waits for the store
            log.info("logged inside the run's transaction")

    def other() -> None:
        in_transaction.wait(5)
        log.info("logged by another thread")

    threads = [threading.Thread(target=scheduled_run, daemon=True), threading.Thread(target=other, daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert sorted(s["message"] for s in _statuses(store, "tls")) == [
        "logged by another thread",
        "logged inside the run's transaction",
    ]
    store.close()


def test_installed_handler_flushes_in_the_background(tmp_path: Path, store: Store, log: logging.Logger) -> None:
    handler = install_status_logging(
        FlagValues(),
        version="v",
        host_identifier="h",
        store=store,
        loggers=[StdoutLogger()],
        logger_name=NAME,
        flush_interval=0.05,
    )
    try:
        assert handler.glog is None
        log.warning("in the background")
        deadline = time.monotonic() + 5
        while not store.pending("stdout") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [s["message"] for s in _statuses(store, "stdout")] == ["in the background"]
    finally:
        remove_status_logging(handler, NAME)
    assert not any(t.name == "hostql-status-flush" for t in threading.enumerate())


def test_removing_the_handler_flushes_what_is_left(store: Store, log: logging.Logger) -> None:
    handler = install_status_logging(
        FlagValues(), version="v", host_identifier="h", store=store, loggers=[StdoutLogger()], logger_name=NAME,
        flush_interval=3600,
    )  # fmt: skip
    log.error("last words")
    remove_status_logging(handler, NAME)
    assert [s["message"] for s in _statuses(store, "stdout")] == ["last words"]


def test_logger_status_sync_flag(store: Store, log: logging.Logger) -> None:
    flags = FlagValues({"logger_status_sync": "true"})
    handler = install_status_logging(
        flags, version="v", host_identifier="h", store=store, loggers=[StdoutLogger()], logger_name=NAME
    )
    try:
        assert handler.sync is True
        assert not any(t.name == "hostql-status-flush" for t in threading.enumerate())
        log.info("at once")
        assert [s["message"] for s in _statuses(store, "stdout")] == ["at once"]
    finally:
        remove_status_logging(handler, NAME)
