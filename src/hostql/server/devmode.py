"""``hostql server --dev``: everything a first try needs, made once in the data directory.

* first-run setup when the database has no user (the service behind
  ``POST /api/v1/setup``): an admin ``admin@hostql.local`` with a random
  password, the organisation and server URL, a global enroll secret -- the password is printed once and kept in
  ``DATA_DIR/admin-credentials.txt`` (mode 0600) for the demo;
* a global enroll secret, written to ``DATA_DIR/enroll_secret``;
* ``DATA_DIR/agent.flags`` and a ready-to-paste ``hostql agent`` command line;
* ``DATA_DIR/dev.json`` with the URL, CA, credentials and agent arguments
  (read by ``scripts/demo.py`` and the tests).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import func, select

from hostql.server.settings import Settings
from hostql.server.storage.db import Database
from hostql.server.storage.models import EnrollSecret, User

ADMIN_EMAIL = "admin@hostql.local"
ADMIN_NAME = "Admin"
ORG_NAME = "hostql (development)"


@dataclass
class DevInfo:
    url: str
    data_dir: str
    ca_cert: str  # empty without TLS
    admin_email: str
    admin_password: str | None  # None: the admin existed before this start
    credentials_file: str
    enroll_secret_file: str
    agent_flagfile: str
    agent_args: list[str] = field(default_factory=list)

    def agent_command(self) -> str:
        return shlex.join(["hostql", "agent", *self.agent_args])


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(path, 0o600)


def new_password() -> str:
    """A random password meeting the password policy (length, a digit, a symbol)."""
    return f"{secrets.token_urlsafe(15)}-{secrets.randbelow(90) + 10}!"


def ensure_admin(database: Database, settings: Settings) -> str | None:
    """Run first-run setup (as ``POST /api/v1/setup`` does) when there are no users;
    returns the admin's password, else None."""
    from hostql.server.services import setup

    with database.session() as session:
        if session.scalar(select(func.count()).select_from(User)):
            return None
        password = new_password()
        setup.run_setup(session, settings, name=ADMIN_NAME, email=ADMIN_EMAIL, password=password,
                        password_confirmation=None, org_name=ORG_NAME, org_logo_url="",
                        server_url=settings.public_url, enroll_secret=None)
    return password


def ensure_enroll_secret(database: Database) -> str:
    """The first global enroll secret, created when there is none."""
    with database.session() as session:
        row = session.scalars(select(EnrollSecret).where(EnrollSecret.team_id.is_(None))
                              .order_by(EnrollSecret.id)).first()
        if row is not None:
            return row.secret
        secret = secrets.token_urlsafe(24)
        session.add(EnrollSecret(secret=secret, team_id=None))
    return secret


def agent_args(url: str, ca_cert: Path | None, secret_file: Path, agent_dir: Path) -> list[str]:
    """The ``hostql agent`` flags that enroll it in this server and use its TLS APIs."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    hostname = f"{host}:{parts.port or 443}"
    return [
        f"--tls_hostname={hostname}",
        *([f"--tls_server_certs={ca_cert}"] if ca_cert is not None else []),
        f"--enroll_secret_path={secret_file}",
        "--enroll_tls_endpoint=/api/osquery/enroll",
        "--config_plugin=tls",
        "--config_tls_endpoint=/api/osquery/config",
        "--config_refresh=10",
        "--logger_plugin=tls",
        "--logger_tls_endpoint=/api/osquery/log",
        "--logger_tls_period=10",
        "--disable_distributed=false",
        "--distributed_plugin=tls",
        "--distributed_interval=10",
        "--distributed_tls_read_endpoint=/api/osquery/distributed/read",
        "--distributed_tls_write_endpoint=/api/osquery/distributed/write",
        "--distributed_tls_max_attempts=3",
        f"--database_path={agent_dir / 'osquery.db'}",
        f"--logger_path={agent_dir / 'logs'}",
        f"--pidfile={agent_dir / 'osqueryd.pidfile'}",
    ]


def prepare(settings: Settings, database: Database, ca_cert: Path | None) -> DevInfo:
    """Admin, enroll secret, agent flags and ``dev.json`` in ``settings.data_dir``."""
    data_dir = Path(settings.data_dir).resolve()
    password = ensure_admin(database, settings)
    credentials = data_dir / "admin-credentials.txt"
    if password is not None:
        _write_private(credentials, f"email: {ADMIN_EMAIL}\npassword: {password}\n")
    secret_file = data_dir / "enroll_secret"
    _write_private(secret_file, ensure_enroll_secret(database) + "\n")
    agent_dir = data_dir / "agent"
    (agent_dir / "logs").mkdir(parents=True, exist_ok=True)
    args = agent_args(settings.public_url, ca_cert, secret_file, agent_dir)
    flagfile = data_dir / "agent.flags"
    flagfile.write_text("".join(arg + "\n" for arg in args), encoding="utf-8")
    info = DevInfo(url=settings.public_url, data_dir=str(data_dir), ca_cert=str(ca_cert or ""), admin_email=ADMIN_EMAIL,
                   admin_password=password, credentials_file=str(credentials), enroll_secret_file=str(secret_file),
                   agent_flagfile=str(flagfile), agent_args=args)
    record = asdict(info)
    record.pop("admin_password")  # the password stays in the 0600 credentials file only
    (data_dir / "dev.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return info


def banner(info: DevInfo) -> str:
    if info.admin_password is not None:
        login = f"{info.admin_email} / {info.admin_password}   (shown once; also in {info.credentials_file})"
    else:
        login = f"{info.admin_email} (password from the first start, in {info.credentials_file})"
    return "\n".join([
        "",
        "hostql server is running in development mode",
        f"  URL:            {info.url}",
        f"  data directory: {info.data_dir}",
        f"  CA certificate: {info.ca_cert or '(none: plain HTTP)'}",
        f"  admin login:    {login}",
        f"  enroll secret:  {info.enroll_secret_file}",
        "  enroll an agent on this machine with:",
        f"    {info.agent_command()}",
        f"  (or: hostql agent --flagfile {info.agent_flagfile})",
        "",
    ])
