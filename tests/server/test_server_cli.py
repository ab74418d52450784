"""The real ``hostql server`` process: dev mode over TLS, external databases, bad settings."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from dbservers import DbServer, free_port, postgres_server, redis_server  # noqa: F401  (fixtures)

from hostql.server.storage.db import Database
from hostql.server.storage.models import EnrollSecret, User

pytestmark = pytest.mark.slow
START_TIMEOUT = 60.0


class ServerProcess:
    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.out = cwd / "server.stdout"
        self.err = cwd / "server.stderr"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "hostql", "server", *args], cwd=cwd,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **(env or {})})

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_healthy(self, url: str, verify: ssl.SSLContext | bool) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
            try:
                response = httpx.get(f"{url}/healthz", verify=verify, timeout=5)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        pytest.fail(f"no healthy /healthz at {url} within {START_TIMEOUT:g} s: {last}\n{self.stderr()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        return self.proc.returncode


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=20)


def run_server(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hostql", "server", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def test_dev_mode_serves_tls_and_creates_admin(tmp_path: Path, servers: list[ServerProcess]) -> None:
    port = free_port()
    data = tmp_path / "data"
    server = ServerProcess(["--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)], tmp_path)
    servers.append(server)
    ca = data / "ca.pem"
    deadline = time.monotonic() + START_TIMEOUT
    while not ca.exists() and time.monotonic() < deadline and server.proc.poll() is None:
        time.sleep(0.1)
    context = ssl.create_default_context(cafile=str(ca))
    for host in ("127.0.0.1", "localhost"):
        server.wait_healthy(f"https://{host}:{port}", context)
    # The server's certificate is not trusted without the printed CA.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5)

    out = server.stdout()
    assert f"URL:            https://127.0.0.1:{port}" in out
    assert f"CA certificate: {ca}" in out
    match = re.search(r"admin login:\s+admin@hostql\.local / (\S+)", out)
    assert match, out
    password = match.group(1)
    assert f"--tls_server_certs={ca}" in out and f"--tls_hostname=127.0.0.1:{port}" in out
    assert f"--enroll_secret_path={data / 'enroll_secret'}" in out

    database = Database(f"sqlite:///{data}/server.db")
    try:
        with database.session() as session:
            admin = session.query(User).filter_by(email="admin@hostql.local").one()
            assert admin.global_role == "admin"
            assert PasswordHasher().verify(admin.password_hash, password)
            secret = session.query(EnrollSecret).filter_by(team_id=None).one().secret
        assert (data / "enroll_secret").read_text().strip() == secret
        assert (data / "enroll_secret").stat().st_mode & 0o077 == 0
    finally:
        database.dispose()

    login = httpx.post(f"https://127.0.0.1:{port}/api/v1/fleet/login", verify=context, timeout=10,
                       json={"email": "admin@hostql.local", "password": password})
    if login.status_code != 404:  # the login endpoint is served by api/users.py
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        version = httpx.get(f"https://127.0.0.1:{port}/api/v1/fleet/version", verify=context, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
        assert version.status_code == 200 and version.json()["version"]

    assert server.stop() == 0
    assert "Shutting down" in server.stderr()

    # A second start keeps the CA, the admin and the secret, and prints no new password.
    ca_before = ca.read_bytes()
    again = ServerProcess(["--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)], tmp_path)
    servers.append(again)
    again.wait_healthy(f"https://127.0.0.1:{port}", context)
    assert ca.read_bytes() == ca_before
    assert "password from the first start" in again.stdout()
    assert password not in again.stdout()
    assert again.stop() == 0


def test_migrated_postgres_with_redis_over_plain_http(tmp_path: Path, servers: list[ServerProcess],
                                                      postgres_server: DbServer,  # noqa: F811
                                                      redis_server: DbServer) -> None:  # noqa: F811
    url = postgres_server.new_database()
    refused = run_server(["--db", url, "--no-tls", "--listen", f"127.0.0.1:{free_port()}"], tmp_path)
    assert refused.returncode != 0
    assert "setting db" in refused.stderr and "is not initialised" in refused.stderr
    prepared = run_server(["prepare-db", "--db", url], tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    port = free_port()
    server = ServerProcess(["--no-tls", "--listen", f"127.0.0.1:{port}"], tmp_path,
                           env={"HOSTQL_DB": url, "HOSTQL_REDIS": redis_server.url()})
    servers.append(server)
    server.wait_healthy(f"http://127.0.0.1:{port}", False)
    for check in ("db", "redis"):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz?check={check}", timeout=5).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/healthz?check=disk", timeout=5).status_code == 400
    assert server.stop() == 0


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--tls-cert", "/nonexistent/x.pem", "--tls-key", "/nonexistent/x.pem"], {},
     "setting tls_cert (from --tls-cert): cannot read /nonexistent/x.pem: No such file or directory"),
    (["--no-tls", "--db", "postgresql://u@h:notaport/x"], {}, "setting db (from --db): malformed database URL"),
    (["--no-tls"], {"HOSTQL_DB": "oracle://u@h/x"}, "setting db (from HOSTQL_DB): unsupported database"),
    (["--no-tls", "--listen", "localhost"], {}, "setting listen (from --listen): expected HOST:PORT"),
    (["--no-tls", "--redis", "localhost"], {}, "setting redis (from --redis): malformed URL"),
    ([], {}, "setting tls_cert: required when TLS is on"),
])
def test_bad_settings_stop_the_server(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    result = run_server(["--data-dir", str(tmp_path), *args], tmp_path, env)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr


def test_unreachable_databases_stop_the_server(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = run_server(["--no-tls", "--db", f"postgresql://hostql@127.0.0.1:{port}/hostql"], tmp_path)
    assert result.returncode == 1
    assert f"setting db (from --db): cannot connect to postgresql://hostql@127.0.0.1:{port}/hostql" in result.stderr
    result = run_server(["prepare-db", "--db", f"mysql://root:pw@127.0.0.1:{port}/hostql"], tmp_path)
    assert result.returncode == 1
    assert "setting db (from --db): cannot connect to mysql://root:***@127.0.0.1" in result.stderr
    assert "pw@" not in result.stderr
    result = run_server(["--dev", "--no-tls", "--data-dir", str(tmp_path / "d"), "--listen",
                         f"127.0.0.1:{free_port()}", "--redis", f"redis://127.0.0.1:{port}/0"], tmp_path)
    assert result.returncode == 1
    assert f"setting redis (from --redis): cannot connect to redis://127.0.0.1:{port}/0" in result.stderr


def test_listen_address_in_use(tmp_path: Path) -> None:

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_server(["--dev", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}"], tmp_path)
    assert result.returncode == 1
    assert f"setting listen (from --listen): cannot listen on 127.0.0.1:{port}" in result.stderr


def test_uvicorn_runs_on_uvloop_and_httptools_keeping_the_idle_shutdown() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from hostql.server import main as server_main
    from hostql.server.protocol import http_protocol

    assert server_main._event_loop() == "uvloop"
    protocol = http_protocol()
    assert issubclass(protocol, HttpToolsProtocol)
    assert protocol.shutdown is not HttpToolsProtocol.shutdown  # idle keep-alive connections are aborted


def _http_responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a stream of HTTP/1.1 responses with content-length bodies."""
    responses = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
        length = int(headers["content-length"])
        responses.append((int(status_line.split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return responses


def test_idle_reads_are_answered_in_order_next_to_full_requests(tmp_path: Path, servers: list[ServerProcess]) -> None:
    from osquery_agent_helpers import answer_all, enroll_body, real_host_details

    from hostql.server.fast_read import EMPTY_READ

    port = free_port()
    data = tmp_path / "data"
    server = ServerProcess(["--dev", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)], tmp_path)
    servers.append(server)
    deadline = time.monotonic() + START_TIMEOUT
    while not (data / "enroll_secret").exists() and time.monotonic() < deadline and server.proc.poll() is None:
        time.sleep(0.1)
    context = ssl.create_default_context(cafile=str(data / "ca.pem"))
    url = f"https://127.0.0.1:{port}"
    server.wait_healthy(url, context)
    with httpx.Client(base_url=url, verify=context, timeout=10) as client:
        secret = (data / "enroll_secret").read_text().strip()
        enrolled = client.post("/api/osquery/enroll", json=enroll_body(secret, "proto", real_host_details()))
        key = enrolled.json()["node_key"]
        for _ in range(5):  # answer the detail and label queries: from then on the host is quiet
            queries = client.post("/api/osquery/distributed/read", json={"node_key": key}).json()["queries"]
            if not queries:
                break
            client.post("/api/osquery/distributed/write", json={"node_key": key, **answer_all(queries)})
        assert queries == {}

    def read(node_key: str, *extra: str) -> bytes:
        body = f'{{"node_key": "{node_key}"}}'.encode()
        head = ["POST /api/osquery/distributed/read HTTP/1.1", f"host: 127.0.0.1:{port}",
                "content-type: application/json", f"content-length: {len(body)}", *extra]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    # Pipelined on one connection: quiet, unknown key (the full ASGI path), quiet, quiet with close.
    requests = read(key) + read("no-such-key") + read(key) + read(key, "connection: close")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw_socket, \
            context.wrap_socket(raw_socket, server_hostname="127.0.0.1") as tls:
        tls.sendall(requests)
        received = b""
        while chunk := tls.recv(65536):
            received += chunk
    responses = _http_responses(received)
    assert [(status, body) for status, _, body in responses] == [
        (200, EMPTY_READ), (401, b'{"error":"invalid node key","node_invalid":true}'), (200, EMPTY_READ),
        (200, EMPTY_READ)], responses
    for _, headers, _ in responses:
        assert headers["content-type"] == "application/json" and "date" in headers, headers
    assert server.stop() == 0
