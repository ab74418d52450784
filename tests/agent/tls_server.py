"""A real HTTPS server speaking osquery's TLS API, for the agent's tests.

A throwaway CA (trustme) signs a certificate for 127.0.0.1; the server is
Python's ``http.server`` behind ``ssl`` in a background thread on a free port.
Every request is recorded (path, headers, parsed body, gunzipped if needed)
and answered by a per-path handler.  Switches let a test refuse node keys,
take the server down (connection refused) and bring it back on the same port,
or close the connection after every response.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

ENROLL = "/api/v1/osquery/enroll"
CONFIG = "/api/v1/osquery/config"
LOG = "/api/v1/osquery/log"
READ = "/api/v1/osquery/distributed/read"
WRITE = "/api/v1/osquery/distributed/write"
SECRET = "this_is_a_deployment_secret"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-case names
    raw: bytes  # as received (maybe gzip)
    body: Any  # parsed JSON of the (gunzipped) body, or None
    client_cert: bool = False

    @property
    def node_key(self) -> str | None:
        return self.body.get("node_key") if isinstance(self.body, dict) else None


Handler = Callable[[Recorded], Any]  # returns a JSON-able object, or bytes sent as-is


@dataclass
class State:
    """Everything the handlers look at; tests change it freely."""

    secret: str = SECRET
    config: dict[str, Any] = field(default_factory=lambda: {"schedule": {}, "options": {}})
    valid_keys: set[str] = field(default_factory=set)
    reads: list[dict[str, Any]] = field(default_factory=list)  # answered in order, then {"queries": {}}
    fail_writes: int = 0  # answer this many distributed writes with an error
    fail_logs: int = 0
    check_keys: bool = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: TLSTestServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.owner.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.owner.handshake_errors.append(str(exc))
            return
        self.owner._track(tls, True)
        self.owner.connections_accepted += 1
        try:
            _RequestHandler(tls, client_address, self)
        finally:
            self.owner._track(tls, False)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # keep test output clean
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        data = raw
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(raw)
        try:
            body = json.loads(data) if data else None
        except json.JSONDecodeError:
            body = None
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        record = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body, bool(peer))
        with owner.lock:
            owner.requests.append(record)
        target = owner.redirects.get(self.path)
        if target is not None:
            self.send_response(307)
            self.send_header("Location", f"https://{owner.hostname}{target}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = owner.answer(record)
        payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        if "gzip" in record.headers.get("accept-encoding", "") and owner.gzip_responses:
            payload = gzip.compress(payload)
            gzipped = True
        else:
            gzipped = False
        self.send_response(owner.status_code)
        self.send_header("Content-Type", "application/json")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        if owner.close_after_response:
            # No "Connection: close" header: the client finds out the hard way.
            self.close_connection = True


class TLSTestServer:
    """Start with ``with TLSTestServer(tmp_path) as server:``."""

    def __init__(self, directory: Path, *, require_client_cert: bool = False,
                 names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert(*names)
        self.ca_path = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self.client_ca = trustme.CA()
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_cert.configure_cert(self.ssl_context)
        if require_client_cert:
            self.client_ca.configure_trust(self.ssl_context)
            self.ssl_context.verify_mode = ssl.CERT_REQUIRED
        self.state = State()
        self.handlers: dict[str, Handler] = {
            ENROLL: self._enroll,
            CONFIG: self._config,
            LOG: self._log,
            READ: self._read,
            WRITE: self._write,
        }
        self.requests: list[Recorded] = []
        self.handshake_errors: list[str] = []
        self.lock = threading.Lock()
        self.invalid_once: set[str] = set()  # paths that answer node_invalid once
        self.close_after_response = False
        self.gzip_responses = True
        self.status_code = 200
        self.redirects: dict[str, str] = {}  # path -> path answered with a 307
        self.connections_accepted = 0
        self._keys = itertools.count(1)
        self._connections: set[ssl.SSLSocket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.up()

    # lifecycle

    @property
    def hostname(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        self._httpd = _Server(self, ("127.0.0.1", self.port))
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening and cut open connections: clients get connection refused."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        with self.lock:
            live = list(self._connections)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd = None

    def _track(self, conn: ssl.SSLSocket, add: bool) -> None:
        with self.lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def __enter__(self) -> TLSTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def client_cert_files(self) -> tuple[str, str]:
        """A client certificate (signed by the client CA) and its key, as files."""
        cert = self.client_ca.issue_cert("agent.example")
        cert_path = self.directory / "client.pem"
        key_path = self.directory / "client.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        return str(cert_path), str(key_path)

    # answers

    def answer(self, record: Recorded) -> Any:
        with self.lock:
            if record.path in self.invalid_once:
                self.invalid_once.discard(record.path)
                return {"node_invalid": True, "error": "invalid node key"}
        handler = self.handlers.get(record.path)
        if handler is None:
            return {"error": f"no such endpoint {record.path}"}
        if record.path != ENROLL and self.state.check_keys and record.node_key not in self.state.valid_keys:
            return {"node_invalid": True, "error": "invalid node key"}
        return handler(record)

    def revoke_keys(self) -> None:
        with self.lock:
            self.state.valid_keys.clear()

    def _enroll(self, record: Recorded) -> Any:
        body = record.body if isinstance(record.body, dict) else {}
        if body.get("enroll_secret") != self.state.secret:
            return {"error": "enroll failed: invalid secret", "node_invalid": True}
        key = f"node-key-{next(self._keys)}"
        with self.lock:
            self.state.valid_keys.add(key)
        return {"node_key": key, "node_invalid": False}

    def _config(self, record: Recorded) -> Any:
        return self.state.config

    def _log(self, record: Recorded) -> Any:
        with self.lock:
            if self.state.fail_logs > 0:
                self.state.fail_logs -= 1
                return {"error": "log storage unavailable"}
        return {}

    def _read(self, record: Recorded) -> Any:
        with self.lock:
            if self.state.reads:
                return self.state.reads.pop(0)
        return {"queries": {}}

    def _write(self, record: Recorded) -> Any:
        with self.lock:
            if self.state.fail_writes > 0:
                self.state.fail_writes -= 1
                return {"error": "result storage unavailable"}
        return {}

    # looking at what came in

    def to(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def enrollments(self) -> int:
        return len(self.to(ENROLL))

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()


def agent_flags(server: TLSTestServer, directory: Path, **extra: Any) -> dict[str, Any]:
    """Flag values pointing an agent at ``server`` (pass to FlagValues)."""
    secret = directory / "secret.txt"
    secret.write_text(f"  {server.state.secret}\n")
    flags: dict[str, Any] = {
        "tls_hostname": server.hostname,
        "tls_server_certs": str(server.ca_path),
        "enroll_tls_endpoint": ENROLL,
        "enroll_secret_path": str(secret),
        "config_tls_endpoint": CONFIG,
        "logger_tls_endpoint": LOG,
        "distributed_tls_read_endpoint": READ,
        "distributed_tls_write_endpoint": WRITE,
        "disable_distributed": False,
    }
    flags.update(extra)
    return flags


@dataclass
class Agent:
    """The agent-side objects a test talks through."""

    flags: Any  # FlagValues
    store: Any  # Store
    client: Any  # RemoteClient
    sleeps: list[float]

    def close(self) -> None:
        self.client.close()
        self.store.close()


def make_agent(server: TLSTestServer, directory: Path, runner: Any = None, *, db: str = "state.db",
               **extra: Any) -> Agent:
    """A RemoteClient for ``server`` over a store in ``directory``; sleeps are recorded, not slept."""
    from hostql.agent.flags import FlagValues
    from hostql.agent.remote.client import RemoteClient
    from hostql.agent.remote.identity import HostIdentity
    from hostql.agent.store import Store

    flags = FlagValues(agent_flags(server, directory, **extra))
    store = Store(directory / db)
    sleeps: list[float] = []
    identity = HostIdentity(flags, store, hostname_fn=lambda: "test-host", uuid_fn=lambda: "")
    client = RemoteClient.from_flags(flags, store, runner, identity=identity, sleep=sleeps.append)
    return Agent(flags, store, client, sleeps)
