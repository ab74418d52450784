"""Status log: Python log records from hostql turned into osquery status lines.

:class:`StatusHandler` is a ``logging.Handler``.  For each record at or above
``--logger_min_status`` it

* writes a glog text line to ``osqueryd.INFO``/``WARNING``/``ERROR`` when the
  filesystem logger is active (synchronously, as glog does), and
* queues a JSON status line (``logformat.status_line``) for the store's
  outbox, kind ``status``, for every logger that wants status lines (TLS,
  stdout, syslog), to be delivered by their threads.

Like osqueryd, status lines reach the outbox asynchronously: they wait in
memory until :meth:`StatusHandler.flush` (a flusher thread started by
:func:`install_status_logging` calls it every ``FLUSH_INTERVAL`` seconds, and
``close`` flushes the rest).  With ``--logger_status_sync`` every record is
flushed at once.  Never writing the store from inside ``emit`` by default keeps
a record logged in the middle of another thread's store transaction from
waiting on that transaction, and from being rolled back with it.

Severities: DEBUG 0 (only with ``--verbose``, else dropped), INFO 0, WARNING 1,
ERROR 2, CRITICAL 3.  File name and line come from the record.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from hostql.agent.flags import FlagValues
from hostql.agent.logformat import status_line
from hostql.agent.loggers.base import STATUS, Logger, flag_bool, flag_int, wants_status
from hostql.agent.loggers.glog import GlogFiles
from hostql.agent.store import Store

INFO, WARNING, ERROR, FATAL = 0, 1, 2, 3
FLUSH_INTERVAL = 3.0  # osqueryd relays buffered status lines every 3 scheduler ticks
MAX_BUFFERED = 100_000  # lines kept in memory while the store is not reachable

Decorations = Mapping[str, str] | Callable[[], Mapping[str, str] | None] | None


def severity_of(levelno: int, verbose: bool = False) -> int | None:
    """osquery severity of a Python level; None for a record that is not recorded."""
    if levelno >= logging.CRITICAL:
        return FATAL
    if levelno >= logging.ERROR:
        return ERROR
    if levelno >= logging.WARNING:
        return WARNING
    if levelno >= logging.INFO or verbose:
        return INFO
    return None


def record_message(record: logging.LogRecord) -> str:
    """The record's message, with the exception's type and text when it has one."""
    message = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        message = f"{message}: {type(exc).__name__}: {exc}"
    return message


class StatusHandler(logging.Handler):
    def __init__(
        self,
        *,
        version: str,
        host_identifier: str | Callable[[], str] = "",
        store: Store | None = None,
        sinks: Sequence[str] = (),
        glog: GlogFiles | None = None,
        min_status: int = 0,
        verbose: bool = False,
        decorations: Decorations = None,
        sync: bool = False,
    ) -> None:
        super().__init__(logging.DEBUG)
        self.version = version
        self.host_identifier = host_identifier
        self.store = store
        self.sinks = list(sinks)
        self.glog = glog
        self.min_status = min_status
        self.verbose = verbose
        self.decorations = decorations
        self.sync = sync
        self.dropped = 0  # lines dropped because the buffer was full
        self._buffer: deque[str] = deque()
        self._buffer_lock = threading.Lock()
        # A status line whose own delivery logs (a store error, say) must not recurse.
        self._local = threading.local()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def severity(self, record: logging.LogRecord) -> int | None:
        severity = severity_of(record.levelno, self.verbose)
        if severity is None or severity < self.min_status:
            return None
        return severity

    def json_line(self, record: logging.LogRecord, severity: int) -> str:
        host = self.host_identifier() if callable(self.host_identifier) else self.host_identifier
        decorations = self.decorations() if callable(self.decorations) else self.decorations
        return status_line(
            host,
            int(record.created),
            severity,
            record.filename,
            record.lineno,
            record_message(record),
            self.version,
            decorations,
        )

    def handle(self, record: logging.LogRecord) -> bool:
        # logging.Handler.handle holds the handler's lock around emit; emit is
        # thread-safe on its own, and holding that lock while a synchronous
        # flush waits for the store could deadlock with a thread that logs from
        # inside a store transaction.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False):
            return
        severity = self.severity(record)
        if severity is None:
            return
        self._local.busy = True
        try:
            if self.glog is not None:
                self.glog.write(
                    severity,
                    record.created,
                    threading.get_native_id(),
                    record.filename,
                    record.lineno,
                    record_message(record),
                )
            if self.sinks:
                line = self.json_line(record, severity)
                with self._buffer_lock:
                    if len(self._buffer) >= MAX_BUFFERED:
                        self._buffer.popleft()
                        self.dropped += 1
                    self._buffer.append(line)
                if self.sync:
                    self.flush()
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False

    def pending(self) -> int:
        """Status lines waiting for the next flush."""
        with self._buffer_lock:
            return len(self._buffer)

    def flush(self) -> None:
        """logging's flush: move the waiting lines to the outbox (see :meth:`flush_to_store`)."""
        self.flush_to_store()

    def flush_to_store(self) -> bool:
        """Move the waiting status lines into the store's outbox in one insert.

        False when the store refused them; they stay buffered for the next try.
        """
        store = self.store
        if store is None or not self.sinks:
            return True
        with self._buffer_lock:
            lines = list(self._buffer)
            self._buffer.clear()
        if not lines:
            return True
        try:
            store.enqueue(self.sinks, STATUS, lines)
        except Exception:
            with self._buffer_lock:
                self._buffer.extendleft(reversed(lines))
            return False
        return True

    def start(self, interval: float = FLUSH_INTERVAL) -> None:
        """Flush every ``interval`` seconds in a daemon thread until ``close``."""
        if self._flusher is not None:
            return
        self._stop.clear()
        self._flusher = threading.Thread(
            target=self._flush_loop, args=(interval,), name="hostql-status-flush", daemon=True
        )
        self._flusher.start()

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=10)
        self._flusher = None
        self.flush_to_store()  # if the store is gone, the glog files still have the lines
        super().close()

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush_to_store()


def status_sinks(loggers: Iterable[Logger]) -> list[str]:
    """Names of the loggers that take JSON status lines from the outbox."""
    return [logger.name for logger in loggers if wants_status(logger)]


def glog_of(loggers: Iterable[Logger]) -> GlogFiles | None:
    """The glog files of the filesystem logger, if one is active."""
    for logger in loggers:
        glog = getattr(logger, "glog", None)
        if isinstance(glog, GlogFiles):
            return glog
    return None


def install_status_logging(
    flags: FlagValues | None,
    *,
    version: str,
    host_identifier: str | Callable[[], str],
    store: Store | None,
    loggers: Sequence[Logger],
    decorations: Decorations = None,
    logger_name: str = "hostql",
    flush_interval: float = FLUSH_INTERVAL,
) -> StatusHandler:
    """Attach a StatusHandler to the ``hostql`` logger, configured from flags.

    Honours --logger_min_status, --verbose (DEBUG records become INFO status
    lines) and --logger_status_sync; otherwise starts the flusher thread.
    Returns the handler; detach it (flushing what is left) with
    :func:`remove_status_logging`.
    """
    verbose = flag_bool(flags, "verbose", False)
    handler = StatusHandler(
        version=version,
        host_identifier=host_identifier,
        store=store,
        sinks=status_sinks(loggers),
        glog=glog_of(loggers),
        min_status=flag_int(flags, "logger_min_status", 0),
        verbose=verbose,
        decorations=decorations,
        sync=flag_bool(flags, "logger_status_sync", False),
    )
    if not handler.sync:
        handler.start(flush_interval)
    target = logging.getLogger(logger_name)
    target.addHandler(handler)
    target.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler


def remove_status_logging(handler: StatusHandler, logger_name: str = "hostql") -> None:
    logging.getLogger(logger_name).removeHandler(handler)
    handler.close()
