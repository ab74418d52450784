"""Throwaway PostgreSQL, MariaDB and Redis servers for tests.

Each is started from the installed binaries in a fresh temporary directory, on
a free loopback port (never the machine's own 5432/3306/6379 services), once
per test session, and stopped by its pid at the end (SIGTERM, then SIGKILL
after a bounded wait).  A missing binary fails the tests that need it with
the package to install; nothing is skipped.

Use the fixtures ``postgres_server``, ``mariadb_server`` and ``redis_server``
(import them into a test module or conftest), then
``server.new_database()`` for a URL of an empty database of one's own.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    found = shutil.which(name)
    if found:
        return found
    for pattern in extra_dirs:
        for candidate in sorted(glob.glob(os.path.join(pattern, name)), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    pytest.fail(f"{name} not found: install {package} (needed to test that database)")


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if check():
                return
        except Exception as exc:  # connection refused while starting up
            last_error = str(exc)
        time.sleep(0.2)
    stop_process(proc)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.fail(f"{what} did not start within {START_TIMEOUT:g} s (exit {proc.poll()}; "
                f"last error: {last_error})\n{tail}")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop one server by its pid: ``sig``, bounded wait, then SIGKILL."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)


@dataclass
class DbServer:
    kind: str  # "postgresql", "mariadb" or "redis"
    port: int
    directory: Path
    proc: subprocess.Popen[bytes]
    user: str = ""
    password: str = ""
    created: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, database: str = "") -> str:
        if self.kind == "redis":
            return f"redis://127.0.0.1:{self.port}/0"
        scheme = "postgresql" if self.kind == "postgresql" else "mysql"
        auth = f"{self.user}:{self.password}@" if self.password else f"{self.user}@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A URL of a new, empty database on this server."""
        name = f"hostql_{secrets.token_hex(4)}"
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                                 autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        elif self.kind == "mariadb":
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                   connect_timeout=5)
            try:
                with conn.cursor() as cursor:
                    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            finally:
                conn.close()
        else:
            raise ValueError("redis has no databases to create")
        self.created.append(name)
        return self.url(name)


def _popen(args: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)


def start_postgres() -> DbServer:
    initdb = find_binary("initdb", "postgresql", ("/usr/lib/postgresql/*/bin",))
    postgres = find_binary("postgres", "postgresql", ("/usr/lib/postgresql/*/bin",))
    directory = Path(tempfile.mkdtemp(prefix="hostql-pg-"))
    drop: dict[str, Any] = {}
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True, timeout=30)
            account = pwd.getpwnam("postgres")
        os.chown(directory, account.pw_uid, account.pw_gid)
        drop = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [],
                "env": {"PATH": os.environ.get("PATH", ""), "HOME": str(directory), "LC_ALL": "C"}}
    else:
        drop = {"env": {**os.environ, "LC_ALL": "C"}}
    data = directory / "data"
    log = directory / "server.log"
    init = subprocess.run([initdb, "-D", str(data), "-U", "hostql", "--auth=trust", "-E", "UTF8", "--no-sync"],
                          capture_output=True, timeout=120, cwd=directory, **drop)
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr.decode(errors='replace')[-2000:]}")
    port = free_port()
    proc = _popen([postgres, "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                   "-c", f"unix_socket_directories={directory}", "-c", "fsync=off",
                   "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
                  log, cwd=directory, **drop)
    server = DbServer("postgresql", port, directory, proc, user="hostql")

    def ready() -> bool:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user="hostql", dbname="postgres", connect_timeout=2):
            return True

    wait_until(ready, proc, "PostgreSQL", log)
    return server


def start_mariadb() -> DbServer:
    install = find_binary("mariadb-install-db", "mariadb-server")
    mariadbd = find_binary("mariadbd", "mariadb-server", ("/usr/sbin",))
    directory = Path(tempfile.mkdtemp(prefix="hostql-maria-"))
    data = directory / "data"
    log = directory / "server.log"
    user = ["--user=root"] if os.geteuid() == 0 else []
    init = subprocess.run([install, "--no-defaults", f"--datadir={data}", *user,
                           "--auth-root-authentication-method=normal", "--skip-test-db"],
                          capture_output=True, timeout=120, cwd=directory)
    if init.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"mariadb-install-db failed: {init.stdout.decode(errors='replace')[-2000:]}")
    port = free_port()
    proc = _popen([mariadbd, "--no-defaults", f"--datadir={data}", f"--socket={directory}/mysqld.sock",
                   f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={directory}/mysqld.pid", *user,
                   "--skip-log-bin", "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0",
                   "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
                   f"--log-error={log}"], directory / "stdout.log", cwd=directory)
    server = DbServer("mariadb", port, directory, proc, user="root")

    def ready() -> bool:
        import pymysql

        pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2).close()
        return True

    wait_until(ready, proc, "MariaDB", log)
    return server


def start_redis() -> DbServer:
    binary = find_binary("redis-server", "redis-server")
    directory = Path(tempfile.mkdtemp(prefix="hostql-redis-"))
    log = directory / "server.log"
    port = free_port()
    proc = _popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(directory), "--daemonize", "no"], log, cwd=directory)
    server = DbServer("redis", port, directory, proc)

    def ready() -> bool:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2).ping())

    wait_until(ready, proc, "Redis", log)
    return server


def _session_server(start: Callable[[], DbServer], stop_signal: int = signal.SIGTERM) -> Iterator[DbServer]:
    server = start()
    try:
        yield server
    finally:
        stop_process(server.proc, stop_signal)
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DbServer]:
    # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to leave.
    yield from _session_server(start_postgres, signal.SIGINT)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[DbServer]:
    yield from _session_server(start_mariadb)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[DbServer]:
    yield from _session_server(start_redis)
