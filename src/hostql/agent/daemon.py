"""The agent's worker: config, schedule, loggers, remote, until told to stop.

See docs/agent-internals.md for the data flow.  Threads: the scheduler (this
module's main loop), the TLS logger, the distributed loop and the status-log
flusher.  Each thread that runs SQL has its own connection, because an apsw
connection must not be used by two threads at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from hostql import OSQUERY_VERSION
from hostql.agent.config import Config, load_config
from hostql.agent.config_sources import ConfigError, ConfigSource, FilesystemSource
from hostql.agent.decorators import Decorations
from hostql.agent.denylist import CRASHED_QUERY_MESSAGE, check_crashed_query, is_denylisted
from hostql.agent.flags import FlagValues, host_platform
from hostql.agent.loggers import build_loggers, parse_plugin_names
from hostql.agent.loggers.base import Logger
from hostql.agent.runner import Runner
from hostql.agent.scheduler import Schedule
from hostql.agent.stats import PackInfo
from hostql.agent.status import install_status_logging, remove_status_logging
from hostql.agent.store import Store
from hostql.agent.watchdog import LIMIT_SIGNAL, is_worker, watcher_alive, watcher_pid
from hostql.runtime import Runtime
from hostql.sql.connection import Connection, QueryError

log = logging.getLogger("hostql.agent")

# Batch of outbox rows a local logger takes at a time.
DELIVERY_BATCH = 4096


class Daemon:
    """One worker process of ``hostql agent``."""

    def __init__(self, flags: FlagValues, *, clock: Callable[[], float] = time.time) -> None:
        self.flags = flags
        self.clock = clock
        self.stop = threading.Event()
        self.runtime = Runtime(flags)
        self.runtime.watcher_pid = watcher_pid()
        self.store = Store(str(flags.get("database_path")))
        self.conn = Connection(self.runtime)
        self.config: Config | None = None
        self.schedule: Schedule | None = None
        self.threads: list[threading.Thread] = []
        self.client: Any = None
        self.exit_code = 0
        self.source: ConfigSource | None = None
        self._builtin_tables: tuple[str, ...] | None = None
        self._config_lock = threading.Lock()
        self._fresh_config: Config | None = None  # fetched by the refresh thread, not applied yet
        from hostql.agent.remote.identity import HostIdentity

        self.identity = HostIdentity(flags, self.store)
        self.runtime.host_uuid = self.identity.host_uuid()
        self.runtime.instance_id = self.identity.instance_uuid() or self.runtime.instance_id
        self.decorations = Decorations(self.conn, _empty_decorators(), disabled=bool(flags.get("disable_decorators")))
        self.loggers = self._build_loggers()
        self.local_loggers = [lg for lg in self.loggers if lg.name != "tls"]
        self.status = install_status_logging(
            flags, version=OSQUERY_VERSION, host_identifier=self.identity.host_identifier, store=self.store,
            loggers=self.loggers, decorations=self.decorations.current,
        )
        self.runner = Runner(self.conn, self.store, flags, self.decorations, self.identity.host_identifier(),
                             [lg.name for lg in self.loggers])

    # set-up

    def _remote_client(self) -> Any:
        if self.client is None:
            from hostql.agent.remote.client import RemoteClient

            # Enrollment reads host details on whichever thread needs a node key
            # first, so it gets a connection of its own.
            self.client = RemoteClient.from_flags(self.flags, self.store, _LockedRunner(Connection(self.runtime)),
                                                  identity=self.identity, sleep=self._retry_sleep)
        return self.client

    def _retry_sleep(self, seconds: float) -> None:
        """The TLS plugins' waits between attempts, cut short when the agent is told to stop.

        Without this a SIGTERM during enrollment retries (waits of 1, 4, 9 ...
        seconds, 12 attempts) left the agent running for minutes.
        """
        if self.stop.wait(seconds):
            from hostql.agent.remote.transport import RemoteError

            raise RemoteError("the agent is stopping")

    def _build_loggers(self) -> list[Logger]:
        names = parse_plugin_names(str(self.flags.get("logger_plugin")))
        context: dict[str, Any] = {"store": self.store}
        if "tls" in names:
            context["client"] = self._remote_client()
        return build_loggers(names, self.flags, context)

    def _config_source(self) -> ConfigSource:
        plugin = str(self.flags.get("config_plugin"))
        if plugin == "tls":
            from hostql.agent.remote.tls_config import TLSConfigSource

            return TLSConfigSource(self.flags, self._remote_client(), self.store)
        if plugin != "filesystem":
            log.warning("Unknown config plugin %s; using filesystem", plugin)
        return FilesystemSource(str(self.flags.get("config_path")))

    # config

    def fetch_config(self) -> Config | None:
        """Read and check the config (on any thread); None, logged, when it cannot be loaded."""
        if self.source is None:
            self.source = self._config_source()
        if self._builtin_tables is None:
            self._builtin_tables = tuple(self.conn.tables)
        try:
            config = load_config(self.source, self.flags, builtin_tables=self._builtin_tables)
        except ConfigError as exc:
            if self.stop.is_set():  # a fetch cut short by the stop request
                return None
            log.error("Config load failed, keeping the last good config: %s", exc)
            self.runtime.config_valid = self.config is not None
            return None
        current = self.config
        if current is None or current.hash != config.hash:
            for warning in config.warnings:
                log.warning("%s", warning)
        return config

    def load_config(self) -> bool:
        """Load the config; on failure keep the one in force (or run without one)."""
        config = self.fetch_config()
        if config is None:
            return False
        self.apply_config(config)
        return True

    def _config_refresh_loop(self) -> None:
        """Fetch the config when a refresh is due; the scheduler thread applies it.

        Fetching here rather than on the scheduler thread keeps a slow or
        unreachable TLS server (retries wait 1 + 4 s) from stalling the schedule.
        """
        last_refresh = self.clock()
        while not self.stop.wait(0.2):
            if not self._config_refresh_due(last_refresh):
                continue
            last_refresh = self.clock()
            try:
                config = self.fetch_config()
            except Exception:  # the refresh loop must outlive one bad round
                log.exception("Config refresh failed")
                continue
            if config is not None:
                with self._config_lock:
                    self._fresh_config = config

    def _take_fresh_config(self) -> Config | None:
        with self._config_lock:
            config, self._fresh_config = self._fresh_config, None
        return config

    def apply_config(self, config: Config) -> None:
        previous = self.config
        if previous is not None and previous.hash == config.hash:
            # A refresh that brought the same config changes nothing (osquery
            # skips its parsers too); rebuilding the schedule here made queries
            # that had just run run again in the same second.
            self.runtime.config_valid = True
            return
        self.config = config
        self.flags = config.flags
        self.runtime.flags = config.flags
        self.runner.flags = config.flags
        self.runtime.config_hash = config.hash
        self.runtime.config_valid = True
        for name, sql in config.views.items():
            try:
                self.conn.execute(f'DROP VIEW IF EXISTS "{name}"')
                self.conn.execute(f'CREATE VIEW "{name}" AS {sql}')
            except QueryError as exc:
                log.warning("Cannot create view %s: %s", name, exc)
        self.decorations.decorators = config.decorators
        self.decorations.on_load()
        queries = config.runnable_queries(host_platform())
        now = int(self.clock())
        self.schedule = Schedule(self.store, queries, now, int(config.flags.get("schedule_splay_percent")),
                                 previous=self.schedule)
        self.runtime.packs = [PackInfo(p.name, p.platform, p.version, p.shard) for p in config.packs.values()
                              if p.name != "main"]
        self._refresh_schedule_stats()
        if previous is None:
            log.info("Config loaded: %d scheduled queries, hash %s", len(queries), config.hash)
        elif previous.hash != config.hash:
            log.info("Config updated: %d scheduled queries, hash %s", len(queries), config.hash)

    def _refresh_schedule_stats(self) -> None:
        if self.schedule is None:
            return
        now = int(self.clock())
        self.runtime.schedule = []
        for query in self.schedule.queries.values():
            stats = self.runner.stats_for(query)
            stats.denylisted = is_denylisted(self.store, query.name, now, query.denylist)
            self.runtime.schedule.append(stats)

    # running

    def run_query(self, name: str) -> None:
        if self.schedule is None:
            return
        query = self.schedule.queries[name]
        now = int(self.clock())
        if is_denylisted(self.store, query.name, now, query.denylist):
            return
        self.runner.run(query, now)

    def deliver(self) -> None:
        """Hand queued lines to the local loggers (the TLS logger has its own thread)."""
        for logger in self.local_loggers:
            while True:
                batch = self.store.pending(logger.name, limit=DELIVERY_BATCH)
                if not batch:
                    break
                if not logger.deliver(batch):
                    break
                self.store.delivered([row_id for row_id, _, _ in batch])
                if len(batch) < DELIVERY_BATCH:
                    break

    def recover(self) -> None:
        """Lines a crash left between the store and a log file are not written twice."""
        for logger in self.local_loggers:
            pending = self.store.pending(logger.name, limit=1_000_000)
            if pending:
                done = logger.recover(pending)
                self.store.delivered(done)
                log.info("Recovered %d undelivered log lines for %s", len(pending) - len(done), logger.name)
        self.deliver()

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _tls_logger_loop(self) -> None:
        for logger in self.loggers:
            if logger.name == "tls":
                logger.run(self.stop)  # type: ignore[attr-defined]

    def _distributed_loop(self) -> None:
        from hostql.agent.remote.distributed import Distributed

        distributed = Distributed(self.flags, self._remote_client(), _LockedRunner(Connection(self.runtime)),
                                  self.store)
        while not self.stop.is_set():
            try:
                distributed.step()
            except Exception:  # the loop must survive any single failed round
                log.exception("Distributed query round failed")
            self.stop.wait(distributed.next_interval())

    def _config_refresh_due(self, last_refresh: float) -> bool:
        policy = getattr(self.source, "policy", None)
        if policy is not None:
            wait = policy.seconds_until_next()
            return wait is not None and wait <= 0
        refresh = int(self.flags.get("config_refresh"))
        return refresh > 0 and self.clock() - last_refresh >= refresh

    def run(self) -> int:
        """Run until SIGTERM/SIGINT or ``stop`` is set; returns the exit code."""
        self._install_signals()
        crashed = check_crashed_query(self.store, int(self.clock()), is_worker())
        if crashed:
            log.warning(CRASHED_QUERY_MESSAGE, crashed)
        self.recover()
        self.load_config()
        if "tls" in [lg.name for lg in self.loggers]:
            self._start_thread("tls-logger", self._tls_logger_loop)
        if not self.flags.get("disable_distributed"):
            self._start_thread("distributed", self._distributed_loop)
        if self.schedule is not None:
            for query in self.schedule.startup_queries():
                self.run_query(query.name)
        self.deliver()
        self._start_thread("config-refresh", self._config_refresh_loop)
        while not self.stop.is_set():
            now = int(self.clock())
            self.decorations.on_tick(now)
            if self.schedule is not None:
                for query in self.schedule.pop_due(now):
                    if self.stop.is_set():
                        break
                    self.run_query(query.name)
                self._refresh_schedule_stats()
            self.deliver()
            fresh = self._take_fresh_config()
            if fresh is not None:
                self.apply_config(fresh)
            if self.runtime.watcher_pid > 0 and not watcher_alive(self.runtime.watcher_pid):
                log.error("The watcher process is gone; the worker stops")
                break
            wait = self.schedule.seconds_until_next(self.clock()) if self.schedule else 1.0
            self.stop.wait(min(max(wait, 0.05), 1.0))
        return self.shutdown()

    def shutdown(self) -> int:
        """Flush what can be flushed; the rest stays in the store for the next start."""
        if self.runner.abandon:
            log.warning("Stopped by the watchdog; the running query stays marked and will be denylisted")
            # Nothing more runs: the schedule is abandoned, the store keeps the rest.
            remove_status_logging(self.status)
            self.store.close()
            return self.exit_code
        log.info("hostql agent stopping")
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        remove_status_logging(self.status)
        self.deliver()
        for logger in self.loggers:
            logger.close()
        if self.client is not None:
            self.client.close()
        self.store.close()
        return self.exit_code

    def _install_signals(self) -> None:
        """Stop on SIGTERM/SIGINT; abandon the running query on the watcher's LIMIT_SIGNAL.

        A Python signal handler only runs between bytecodes, so it would wait
        for a long SQLite query to finish.  The handlers are no-ops; the signal
        number arrives through the wakeup fd on a thread that interrupts the
        query at once (apsw releases the GIL while SQLite works).
        """
        if threading.current_thread() is not threading.main_thread():
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        for signum in (signal.SIGTERM, signal.SIGINT, LIMIT_SIGNAL):
            signal.signal(signum, lambda signum, frame: None)

        def listen() -> None:
            while True:
                try:
                    data = os.read(read_fd, 64)
                except OSError:
                    return
                if not data:
                    return
                for signum in data:
                    if signum == LIMIT_SIGNAL:
                        self.runner.abandon = True
                        self.exit_code = 1
                    self.stop.set()
                    self.conn.db.interrupt()

        threading.Thread(target=listen, name="signals", daemon=True).start()


class _LockedRunner:
    """A connection shared by callers on several threads, one query at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def execute(self, sql: str) -> Any:
        with self.lock:
            return self.conn.execute(sql)


def _empty_decorators() -> Any:
    from hostql.agent.config import Decorators

    return Decorators()
