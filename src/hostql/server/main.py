"""``hostql server``: the Fleet-compatible management server.

    hostql server --dev                        # HTTPS on 127.0.0.1:8080, everything in ./hostql-data
    hostql server --dev --listen 127.0.0.1:9443 --data-dir /tmp/hq
    hostql server --db postgresql://... --redis redis://... --tls-cert cert.pem --tls-key key.pem
    hostql server prepare-db --db postgresql://...   # apply migrations (idempotent)

Start-up: settings -> database reachable -> schema current (``--dev`` migrates
itself) -> Redis reachable -> socket bound -> app served by uvicorn over TLS.
SIGTERM or Ctrl-C stops it gracefully.  Any unusable setting stops it before
it serves, with a message naming the setting.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hostql import __version__
from hostql.server.settings import SPECS, Settings, SettingsError, documented, load_settings, parse_bool, validate

log = logging.getLogger("hostql.server")

COMMANDS = ("serve", "prepare-db")

DESCRIPTION = """\
Runs the hostql management server (Fleet-compatible REST API and osquery TLS API).

commands:
  serve        serve the APIs (the default)
  prepare-db   create or upgrade the database schema, then exit (idempotent)

Every setting can also be given as an environment variable HOSTQL_<NAME> or as
a key in the YAML file named by --config; flags win over the environment,
which wins over the file.  See docs/server.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hostql server", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=COMMANDS, default="serve", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"hostql server {__version__}")
    parser.add_argument("--config", metavar="FILE", help="YAML file of settings [env HOSTQL_CONFIG]")
    rows = {row[0]: row for row in documented()}
    for spec in SPECS:
        _, flag, env, default, text = rows[spec.name]
        shown = f" [env {env}; default {default or 'none'}]"
        if spec.name == "tls":
            parser.add_argument(flag, dest="tls", action="store_const", const="false", help=text + shown)
        elif spec.parse is parse_bool:
            parser.add_argument(flag, dest=spec.name, nargs="?", const="true", metavar="BOOL", help=text + shown)
        elif spec.default.__class__ is list:
            parser.add_argument(flag, dest=spec.name, action="append", metavar=spec.metavar or "VALUE",
                                help=text + shown)
        else:
            parser.add_argument(flag, dest=spec.name, metavar=spec.metavar or "VALUE", help=text + shown)
    return parser


def parse_args(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    namespace = vars(build_parser().parse_args(list(argv)))
    command = namespace.pop("command")
    flags = {}
    for key, value in namespace.items():
        if value is None:
            continue
        flags[key] = ",".join(value) if isinstance(value, list) else value
    return command, flags


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(exc: BaseException) -> int:
    print(f"hostql server: {exc}", file=sys.stderr)
    return 1


def prepare_db(settings: Settings) -> int:
    from hostql.server.settings import redact_url
    from hostql.server.startup import check_database, open_database
    from hostql.server.storage import migrate

    validate(settings, serving=False)
    check_database(settings, create_sqlite_dir=True)
    database = open_database(settings)
    try:
        before = migrate.status(database)
        if before.unknown:
            raise SettingsError("db", f"the database has schema revision {', '.join(before.unknown)}, newer than "
                                      "this hostql knows: upgrade hostql", settings.source("db"))
        if before.up_to_date:
            print(f"database {redact_url(settings.db)} is up to date (revision {before.head})")
            return 0
        migrate.upgrade(database)
        print(f"database {redact_url(settings.db)} migrated to revision {migrate.head_revision()} "
              f"({len(before.pending)} migration(s) applied)")
        return 0
    finally:
        database.dispose()


def _dev_setup(settings: Settings) -> Path | None:
    """Create the data dir and the dev certificates; returns the CA path (None without TLS)."""
    data_dir = Path(settings.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError("data_dir", f"cannot create {data_dir}: {exc.strerror or exc}",
                            settings.source("data_dir")) from None
    if not settings.tls:
        return None
    if settings.source("tls_cert") != "dev":
        return Path(settings.tls_cert).resolve()  # the operator's own certificate
    from hostql.server.devcerts import ensure_dev_certs

    certs = ensure_dev_certs(data_dir.resolve(), [settings.host])
    return certs.ca_cert


def serve(settings: Settings) -> int:
    import uvicorn

    from hostql.server import startup
    from hostql.server.app import create_app
    from hostql.server.protocol import http_protocol
    from hostql.server.pubsub import create_pubsub
    from hostql.server.state import ServerState
    from hostql.server.storage import migrate

    _setup_logging(settings.log_level)
    ca_cert = _dev_setup(settings) if settings.dev else None
    validate(settings)
    startup.check_database(settings, create_sqlite_dir=settings.dev)
    database = startup.open_database(settings)
    try:
        if settings.dev:
            migrate.upgrade(database)
        startup.check_migrations(settings, database)
        startup.check_redis(settings)
        listener = startup.open_listener(settings)
        info = None
        if settings.dev:
            from hostql.server import devmode

            info = devmode.prepare(settings, database, ca_cert)
        state = ServerState(database=database, settings=settings, pubsub=create_pubsub(settings.redis or None))
        app = create_app(state)
        config = uvicorn.Config(
            app,
            ssl_certfile=settings.tls_cert if settings.tls else None,
            ssl_keyfile=settings.tls_key if settings.tls else None,
            log_config=None,
            log_level=settings.log_level.lower(),
            access_log=settings.access_log,
            timeout_graceful_shutdown=10,
            timeout_keep_alive=max(1, round(settings.keep_alive_timeout)),
            http=http_protocol(getattr(app, "quick_answers", None), access_log=settings.access_log),
            loop=_event_loop(),
            server_header=False,
            proxy_headers=not settings.tls,
        )
        server = uvicorn.Server(config)
        if info is not None:
            from hostql.server import devmode

            print(devmode.banner(info), flush=True)
        else:
            print(f"hostql server {__version__} listening on {settings.public_url}", flush=True)
        _run(server, listener)
        _close(state)
    finally:
        database.dispose()
    _exit_if_stuck()
    return 0


def _event_loop() -> str:
    """uvloop (libuv, C) when installed: less CPU per request than asyncio's default loop."""
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - uvicorn[standard] installs uvloop
        return "asyncio"
    return "uvloop"


def _exit_if_stuck(grace: float = 5.0) -> None:
    """A request handler still blocked in a worker thread after the graceful shutdown
    would keep the process alive for ever (worker threads are joined at exit):
    give them ``grace`` seconds, then leave without waiting."""
    import os
    import threading
    import time

    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon
             and t.is_alive()]
    if stuck:
        log.warning("exiting with %d request thread(s) still busy: %s", len(stuck), ", ".join(stuck))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _run(server: Any, listener: Any) -> None:
    """Serve until SIGTERM/SIGINT.  Uvicorn re-raises the signal after its graceful
    shutdown; the no-op handlers installed here absorb it so clean-up can run."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise SettingsError("listen", "the server could not start (see the log above)")


def _close(state: Any) -> None:
    import asyncio

    try:
        asyncio.run(state.pubsub.close())
    except Exception:  # best effort at exit
        log.debug("closing pub/sub failed", exc_info=True)
    for item in state.extras.values():
        close = getattr(item, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.debug("closing %r failed", item, exc_info=True)


def run(argv: Sequence[str]) -> int:
    try:
        command, flags = parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    try:
        settings = load_settings(flags)
        if command == "prepare-db":
            return prepare_db(settings)
        return serve(settings)
    except SettingsError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return 130
