"""``make run``: ``hostql server --dev`` plus one local ``hostql agent`` enrolled in it.

Prints the URL and the first admin's credentials, then waits; Ctrl-C (or
SIGTERM) stops the agent and the server, each by its pid, with bounded waits.
Both write their logs to the data directory (``server.log``, ``agent.log``).

    python scripts/demo.py [--data-dir ./hostql-data] [--listen 127.0.0.1:8080]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def hostql() -> list[str]:
    return [sys.executable, "-m", "hostql"]


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([*hostql(), *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop within {STOP_TIMEOUT:g} s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def wait_healthy(url: str, ca: Path, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited ({server.returncode}); see {log}:\n{log.read_text(errors='replace')[-2000:]}")
        if ca.exists():
            try:
                context = ssl.create_default_context(cafile=str(ca))
                with urllib.request.urlopen(f"{url}/healthz", context=context, timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError, ssl.SSLError):
                pass
        time.sleep(0.3)
    sys.exit(f"the server did not become healthy within {START_TIMEOUT:g} s; see {log}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="./hostql-data")
    parser.add_argument("--listen", default=os.environ.get("HOSTQL_LISTEN", "127.0.0.1:8080"))
    options = parser.parse_args()
    data = Path(options.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    server_log, agent_log = data / "server.log", data / "agent.log"
    server: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        started = time.time() - 1
        server = start(["server", "--dev", "--data-dir", str(data), "--listen", options.listen], server_log)
        dev_json = data / "dev.json"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and server.poll() is None:
            if dev_json.exists() and dev_json.stat().st_mtime >= started:
                break
            time.sleep(0.2)
        if not dev_json.exists() or server.poll() is not None:
            print(server_log.read_text(errors="replace")[-2000:], file=sys.stderr)
            return 1
        info = json.loads(dev_json.read_text())
        wait_healthy(info["url"], Path(info["ca_cert"]), server, server_log)
        agent = start(["agent", "--flagfile", info["agent_flagfile"]], agent_log)
        credentials = Path(info["credentials_file"])
        print()
        print("hostql demo: a server and one agent enrolled in it")
        print(f"  URL:            {info['url']}  (CA: {info['ca_cert']})")
        print(credentials.read_text().replace("email:", "  admin email:   ").replace("password:", "  password:     ")
              if credentials.exists() else f"  admin:          {info['admin_email']}")
        print(f"  try:           curl --cacert {info['ca_cert']} {info['url']}/healthz")
        print(f"  logs:           {server_log}, {agent_log}")
        print("Press Ctrl-C to stop both.")
        while True:
            for proc, name, log in ((server, "server", server_log), (agent, "agent", agent_log)):
                if proc.poll() is not None:
                    print(f"the {name} exited ({proc.returncode}); see {log}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping the agent and the server ...")
        return 0
    finally:
        stop(agent, "the agent")
        stop(server, "the server")


if __name__ == "__main__":
    sys.exit(main())
