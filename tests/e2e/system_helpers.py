"""Whole-system test helpers: the real ``hostql server`` and real ``hostql agent`` processes.

Everything runs on loopback over TLS with the throwaway CA ``hostql server --dev``
generates in the test's data directory.  Every process is started with Popen
and tracked by a :class:`System`, which stops each one by its pid (SIGTERM,
bounded wait, SIGKILL) when the test ends, whatever happened.  Every wait is
bounded: :func:`wait_until` polls (the REST API, a file) until a condition
holds or fails the test after ``WAIT`` seconds.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from hostql import OSQUERY_VERSION

SERVER_TESTS = str(Path(__file__).resolve().parent.parent / "server")
if SERVER_TESTS not in sys.path:  # dbservers.py: throwaway PostgreSQL, MariaDB and Redis
    sys.path.insert(0, SERVER_TESTS)

from dbservers import free_port  # noqa: E402

WAIT = 30.0  # the longest any single condition may take to hold
START_TIMEOUT = 60.0  # server start-up (dev mode: CA, certificate, migrations)
STOP_TIMEOUT = 20.0
T = TypeVar("T")

# A policy / label query true on exactly the agents started with ROLE=web.
ROLE_IS_WEB = ("SELECT 1 FROM process_envs WHERE pid = (SELECT pid FROM osquery_info) "
               "AND key = 'ROLE' AND value = 'web';")
# The agent's own ROLE, so each answer can be matched to the agent that gave it.
MY_ROLE = ("SELECT value AS role FROM process_envs WHERE pid = (SELECT pid FROM osquery_info) "
           "AND key = 'ROLE';")


def wait_until(probe: Callable[[], T], what: str, timeout: float = WAIT, interval: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = probe()
        except (httpx.HTTPError, AssertionError, OSError, ValueError) as exc:
            value, last = None, exc  # not ready yet (a 404 while a host re-enrolls, a half-written file)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                                 + (f" (last error: {last!r})" if last is not None else ""))
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(word) for word in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in out:
                out.append(child)
                todo.append(child)
    return out


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Process:
    """One ``hostql <command>`` subprocess, its output in files of ``directory``."""

    def __init__(self, name: str, command: list[str], directory: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.directory = directory
        self.env = env or {}
        self.out = directory / f"{name}.stdout"
        self.err = directory / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.known: set[int] = set()  # descendants ever seen, killed at the end too
        self.stop_seconds = 0.0  # how long the last stop() took

    def start(self) -> Process:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "hostql", *self.command], cwd=self.directory,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env})
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, bounded wait, then SIGKILL (and SIGKILL any descendant left).  The exit code."""
        if self.proc is None:
            return 0
        began = time.monotonic()
        if self.proc.poll() is None:
            self.known.update(_descendants(self.pid))
            _kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pid in self.known:
            _kill(pid, signal.SIGKILL)
        self.stop_seconds = time.monotonic() - began
        return int(self.proc.returncode)


# --------------------------------------------------------------------------- the REST API


class Api:
    """The management REST API of one server, as one logged-in user."""

    def __init__(self, url: str, ca: Path, token: str = "") -> None:
        self.url = url
        self.context = ssl.create_default_context(cafile=str(ca))
        self.client = httpx.Client(base_url=url, verify=self.context, timeout=60, trust_env=False)
        self.token = token

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else {}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def login(self, email: str, password: str) -> None:
        self.token = self.post("/api/v1/fleet/login", {"email": email, "password": password})["token"]

    # the shapes of fleet-reference §3.8

    def host_by_identifier(self, identifier: str) -> dict[str, Any]:
        host: dict[str, Any] = self.get(f"/api/v1/fleet/hosts/identifier/{identifier}")["host"]
        return host

    def hosts(self) -> list[dict[str, Any]]:
        hosts: list[dict[str, Any]] = self.get("/api/v1/fleet/hosts", params={"per_page": 100})["hosts"]
        return hosts


def admin_credentials(data_dir: Path) -> tuple[str, str]:
    """The (email, password) ``--dev`` wrote to ``DATA_DIR/admin-credentials.txt``."""
    fields_ = dict(line.split(": ", 1) for line in (data_dir / "admin-credentials.txt").read_text().splitlines()
                   if ": " in line)
    return fields_["email"], fields_["password"]


@dataclass
class Server:
    process: Process
    port: int
    data_dir: Path
    ca: Path
    result_log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def enroll_secret_file(self) -> Path:
        return self.data_dir / "enroll_secret"

    def api(self) -> Api:
        return Api(self.url, self.ca)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if not self.process.alive():
                code = self.process.proc.returncode if self.process.proc else None
                pytest.fail(f"server {self.process.name} exited with {code}:\n{self.process.stderr()[-4000:]}")
            if self.ca.exists():
                try:
                    context = ssl.create_default_context(cafile=str(self.ca))
                    reply = httpx.get(f"{self.url}/healthz", verify=context, timeout=5, trust_env=False)
                    if reply.status_code == 200:
                        return
                    last = f"{reply.status_code} {reply.text}"
                except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
                    last = repr(exc)
            time.sleep(0.2)
        pytest.fail(f"server {self.process.name} not healthy within {START_TIMEOUT:g} s: {last}\n"
                    f"{self.process.stderr()[-4000:]}")


@dataclass
class Agent:
    process: Process
    identifier: str
    role: str
    server: Server


@dataclass
class System:
    """Every process of one whole-system test; :meth:`stop_all` ends them by pid."""

    directory: Path
    servers: list[Server] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    apis: list[Api] = field(default_factory=list)

    def start_server(self, name: str, *, db: str = "", redis: str = "", dev: bool = True,
                     data_dir: Path | None = None, tls: tuple[Path, Path] | None = None, ca: Path | None = None,
                     extra: tuple[str, ...] = ()) -> Server:
        """``hostql server`` on a free loopback port; ``--dev`` makes the CA, certificate, admin
        and enroll secret in ``data_dir`` (also with ``--db``: it migrates the external database)."""
        port = free_port()
        data_dir = data_dir or self.directory / name
        result_log = self.directory / f"{name}-results.log"
        args = ["server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
                "--result-log-plugin", "filesystem", "--filesystem-result-log-file", str(result_log),
                "--live-query-status-interval", "1", "--seen-time-flush-interval", "1", *extra]
        if dev:
            args.append("--dev")
        if db:
            args += ["--db", db]
        if redis:
            args += ["--redis", redis]
        if tls is not None:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        process = Process(name, args, self.directory, env={"HOSTQL_LOG_LEVEL": "info"})
        ca = ca or data_dir / "ca.pem"
        server = Server(process, port, data_dir, ca, result_log)
        self.servers.append(server)
        process.start()
        server.wait_healthy()
        return server

    def login(self, server: Server, credentials_from: Path | None = None) -> Api:
        api = server.api()
        self.apis.append(api)
        api.login(*admin_credentials(credentials_from or server.data_dir))
        return api

    def start_agent(self, server: Server, identifier: str, role: str, ca: Path | None = None,
                    secret_file: Path | None = None) -> Agent:
        """A real ``hostql agent`` enrolling as ``identifier`` with ``ROLE=role`` in its environment."""
        home = self.directory / identifier
        (home / "logs").mkdir(parents=True, exist_ok=True)
        args = [
            "agent",
            f"--tls_hostname=127.0.0.1:{server.port}",
            f"--tls_server_certs={ca or server.ca}",
            f"--enroll_secret_path={secret_file or server.enroll_secret_file}",
            "--host_identifier=specified",
            f"--specified_identifier={identifier}",
            "--enroll_tls_endpoint=/api/osquery/enroll",
            "--config_plugin=tls",
            "--config_tls_endpoint=/api/osquery/config",
            "--config_refresh=2",
            # filesystem too: a failed run leaves the agent's own status log (glog files) behind.
            "--logger_plugin=tls,filesystem",
            "--logger_tls_endpoint=/api/osquery/log",
            "--logger_tls_period=1",
            "--disable_distributed=false",
            "--distributed_plugin=tls",
            "--distributed_interval=1",
            "--distributed_tls_read_endpoint=/api/osquery/distributed/read",
            "--distributed_tls_write_endpoint=/api/osquery/distributed/write",
            "--distributed_tls_max_attempts=3",
            f"--database_path={home / 'osquery.db'}",
            f"--logger_path={home / 'logs'}",
            f"--pidfile={home / 'osqueryd.pidfile'}",
            "--disable_watchdog",
        ]
        process = Process(identifier, args, self.directory, env={"ROLE": role})
        agent = Agent(process, identifier, role, server)
        self.agents.append(agent)
        process.start()
        return agent

    def stop_all(self) -> None:
        """Agents first (they would retry against a stopped server), then the servers."""
        for api in self.apis:
            api.close()
        for agent in self.agents:
            agent.process.stop()
        for server in self.servers:
            server.process.stop()

    def diagnostics(self) -> str:
        parts = []
        for process in [a.process for a in self.agents] + [s.process for s in self.servers]:
            parts.append(f"--- {process.name} (pid {process.proc.pid if process.proc else '-'}) stderr:\n"
                         f"{process.stderr()[-2500:]}")
        return "\n".join(parts)


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    setup = System(tmp_path)
    try:
        yield setup
    except BaseException:
        print(setup.diagnostics())
        raise
    finally:
        setup.stop_all()


# --------------------------------------------------------------------------- checks shared by the tests


def host_ids(api: Api, agents: list[Agent]) -> dict[str, int]:
    """identifier -> host id, once every agent has enrolled."""
    def enrolled() -> dict[str, int]:
        return {agent.identifier: int(api.host_by_identifier(agent.identifier)["id"]) for agent in agents}

    return wait_until(enrolled, f"{len(agents)} agents to enroll")


def vitals_filled(host: dict[str, Any]) -> bool:
    return bool(host["hostname"] and host["platform"] and host["os_version"] and host["osquery_version"]
                and host["memory"] > 0 and host["primary_ip"])


# The agent options the server sends in every config (fleet-reference §2.2): like osquery, the
# agent applies them over its command-line flags, so the short test intervals go here too.
AGENT_OPTIONS: dict[str, Any] = {
    "config": {
        "options": {"pack_delimiter": "/", "logger_plugin": "tls", "logger_tls_endpoint": "/api/osquery/log",
                    "logger_tls_period": 1, "distributed_plugin": "tls", "disable_distributed": False,
                    "distributed_interval": 1, "distributed_tls_max_attempts": 3, "config_refresh": 2},
    },
    "overrides": {},
}


def create_fixtures(api: Api) -> dict[str, int]:
    """Short agent intervals, and the policy, dynamic label and saved queries of a whole-system
    test; their ids by role."""
    config = api.request("PATCH", "/api/v1/fleet/config", json={"agent_options": AGENT_OPTIONS})
    assert config["agent_options"]["config"]["options"]["distributed_interval"] == 1, config
    policy = api.post("/api/v1/fleet/global/policies", {
        "name": "role is web", "query": ROLE_IS_WEB, "description": "passes on the web agents"})["policy"]
    label = api.post("/api/v1/fleet/labels", {"name": "web agents", "query": ROLE_IS_WEB,
                                              "description": "agents started with ROLE=web"})["label"]
    assert label["label_membership_type"] == "dynamic", label
    scheduled = api.post("/api/v1/fleet/queries", {
        "name": "agent identity", "query": "SELECT pid, version FROM osquery_info;", "interval": 2,
        "logging": "snapshot", "automations_enabled": True, "discard_data": False})["query"]
    role = api.post("/api/v1/fleet/queries", {"name": "agent role", "query": MY_ROLE, "interval": 0})["query"]
    return {"policy": policy["id"], "label": label["id"], "scheduled": scheduled["id"], "role": role["id"]}


def websocket_campaign(api: Api, sql: str, hosts: list[int], timeout: float = WAIT) -> tuple[dict[str, Any],
                                                                                            list[dict[str, Any]]]:
    """Run ``sql`` as a campaign over ``hosts`` (POST /queries/run) and read its results WebSocket
    until ``finished``; returns (campaign, messages)."""
    from websockets.sync.client import connect

    campaign = api.post("/api/v1/fleet/queries/run", {"query": sql, "selected": {"hosts": hosts}})["campaign"]
    assert campaign["Metrics"]["TotalHosts"] == len(hosts), campaign
    ws_url = api.url.replace("https://", "wss://") + "/api/v1/fleet/results/websocket"
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with connect(ws_url, ssl=api.context, proxy=None, open_timeout=10, close_timeout=5) as ws:
        ws.send(json.dumps({"type": "auth", "data": {"token": api.token}}))
        ws.send(json.dumps({"type": "select_campaign", "data": {"campaign_id": campaign["id"]}}))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"campaign {campaign['id']} not finished within {timeout:g} s: {messages}")
            try:
                message = json.loads(ws.recv(timeout=remaining))
            except TimeoutError:
                continue
            messages.append(message)
            assert message["type"] != "error", messages
            if message["type"] == "status" and message["data"]["status"] == "finished":
                break
    return campaign, messages


def role_by_host(results: list[dict[str, Any]]) -> dict[int, str]:
    """host id -> the ROLE the agent reported, from WebSocket ``result`` data."""
    out: dict[int, str] = {}
    for data in results:
        assert not data.get("error"), data
        assert len(data["rows"]) == 1, data
        out[int(data["host"]["id"])] = data["rows"][0]["role"]
    return out


def result_log_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- the scenario

ROLES = {"agent-0": "web", "agent-1": "web", "agent-2": "db"}


def check_vitals(api: Api, ids: dict[str, int]) -> None:
    def filled() -> bool:
        return all(vitals_filled(api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]) for host_id in ids.values())

    wait_until(filled, "host vitals (hostname, platform, os_version, osquery_version, memory, primary_ip)")
    for host_id in ids.values():
        host = api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]
        assert host["osquery_version"] == OSQUERY_VERSION, host
        assert host["status"] == "online", host
        assert (host["distributed_interval"], host["config_tls_refresh"], host["logger_tls_period"]) == (1, 2, 1), host
    listed = api.hosts()
    assert sorted(h["id"] for h in listed) == sorted(ids.values()), listed


def check_campaign(api: Api, ids: dict[str, int]) -> None:
    campaign, messages = websocket_campaign(api, MY_ROLE, sorted(ids.values()))
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "totals" and messages[0]["data"]["count"] == 3, messages
    results = [m["data"] for m in messages if m["type"] == "result"]
    assert len(results) == 3, messages
    assert all(r["distributed_query_execution_id"] == campaign["id"] for r in results), results
    assert role_by_host(results) == {ids[name]: role for name, role in ROLES.items()}
    final = messages[-1]["data"]
    assert final["status"] == "finished" and final["expected_results"] == 3 and final["actual_results"] == 3, final
    assert final["count_of_hosts_with_results"] == 3, final


def check_sync_run(api: Api, ids: dict[str, int], query_id: int, roles: dict[str, str]) -> None:
    body = api.post(f"/api/v1/fleet/queries/{query_id}/run", {"host_ids": sorted(ids.values())})
    assert body["query_id"] == query_id
    assert body["targeted_host_count"] == len(ids) and body["responded_host_count"] == len(ids), body
    got = {r["host_id"]: [row["role"] for row in r["rows"]] for r in body["results"] if not r["error"]}
    assert got == {ids[name]: [roles[name]] for name in ids}, body


def check_policy(api: Api, ids: dict[str, int], policy_id: int) -> None:
    def counted() -> dict[str, Any] | None:
        policy: dict[str, Any] = api.get(f"/api/v1/fleet/global/policies/{policy_id}")["policy"]
        return policy if policy["passing_host_count"] + policy["failing_host_count"] == 3 else None

    policy = wait_until(counted, "the policy's results from all three hosts")
    assert (policy["passing_host_count"], policy["failing_host_count"]) == (2, 1), policy
    for name, host_id in ids.items():
        host = api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]
        responses = {p["id"]: p["response"] for p in host["policies"]}
        assert responses[policy_id] == ("pass" if ROLES[name] == "web" else "fail"), (name, host["policies"])
        assert host["issues"]["failing_policies_count"] == (0 if ROLES[name] == "web" else 1), host["issues"]


def check_label(api: Api, ids: dict[str, int], label_id: int) -> None:
    web = sorted(ids[name] for name, role in ROLES.items() if role == "web")

    def members() -> list[int]:
        return sorted(h["id"] for h in api.get(f"/api/v1/fleet/labels/{label_id}/hosts")["hosts"])

    wait_until(lambda: members() == web, f"label membership {web}")
    assert api.get(f"/api/v1/fleet/labels/{label_id}")["label"]["count"] == 2
    for name, host_id in ids.items():
        labels = {label["id"] for label in api.get(f"/api/v1/fleet/hosts/{host_id}")["host"]["labels"]}
        assert (label_id in labels) == (ROLES[name] == "web"), (name, labels)


def check_report_and_log(api: Api, servers: list[Server], ids: dict[str, int], query_id: int) -> None:
    def reported() -> dict[int, list[dict[str, Any]]] | None:
        report = api.get(f"/api/v1/fleet/queries/{query_id}/report")
        by_host: dict[int, list[dict[str, Any]]] = {}
        for row in report["results"]:
            by_host.setdefault(row["host_id"], []).append(row["columns"])
        return by_host if set(by_host) == set(ids.values()) else None

    by_host = wait_until(reported, "query report rows from all three hosts")
    for rows in by_host.values():
        assert len(rows) == 1, rows  # a snapshot replaces the host's rows
        assert rows[0]["version"] == OSQUERY_VERSION and int(rows[0]["pid"]) > 0, rows
    assert len({rows[0]["pid"] for rows in by_host.values()}) == 3, by_host  # three different agents

    def logged() -> set[str]:
        seen = set()
        for server in servers:
            for line in result_log_lines(server.result_log):
                if line.get("name", "").endswith("agent identity") and line.get("snapshot"):
                    seen.add(line["hostIdentifier"])
        return seen if seen == set(ids) else set()

    wait_until(logged, "result log lines of the scheduled query from all three agents")


def check_reenroll(api: Api, ids: dict[str, int], name: str, policy_id: int, role_query: int) -> dict[str, int]:
    """Delete ``name``'s host; its agent enrolls again as a new host which keeps working."""
    old = ids[name]
    api.delete(f"/api/v1/fleet/hosts/{old}")
    api.get(f"/api/v1/fleet/hosts/{old}", expect=404)

    def new_id() -> int:
        host_id = int(api.host_by_identifier(name)["id"])
        return host_id if host_id != old else 0

    fresh = wait_until(new_id, f"{name} to enroll again after its host was deleted")
    ids = {**ids, name: fresh}
    wait_until(lambda: vitals_filled(api.get(f"/api/v1/fleet/hosts/{fresh}")["host"]), "the new host's vitals")
    listed = sorted(h["id"] for h in api.hosts())
    assert listed == sorted(ids.values()), listed  # no duplicate, the old row stays gone

    def policy_answer() -> str:
        host = api.get(f"/api/v1/fleet/hosts/{fresh}")["host"]
        return str({p["id"]: p["response"] for p in host["policies"]}.get(policy_id, ""))

    assert wait_until(policy_answer, "the re-enrolled host's policy result") == "fail"
    check_sync_run(api, ids, role_query, ROLES)
    return ids


def assert_clean_stop(server: Server) -> None:
    code = server.process.stop()
    stderr = server.process.stderr()
    assert code == 0, stderr[-4000:]
    assert server.process.stop_seconds < 15, f"server took {server.process.stop_seconds:.1f} s to stop"
    assert "still busy" not in stderr, stderr[-4000:]
    assert "graceful shutdown exceeded" not in stderr, stderr[-4000:]
    assert "Traceback" not in stderr, stderr[-6000:]
