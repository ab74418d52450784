"""HTTPS requests to the osquery TLS API, the way osquery's TLS transport makes them.

One :class:`TLSTransport` serves every TLS plugin of the agent (enroll, config,
logger, distributed): ``POST https://<tls_hostname><path>`` with a JSON body,
the server certificate checked only against ``--tls_server_certs`` (pinning,
no system CA store), hostname verified, TLS 1.2 or newer, 16 s per request.

Like osquery, the HTTP status code is not looked at: the body decides.  An
empty body is ``{}``, a body that is not a JSON object is a failure, a body with
``"node_invalid": true`` raises :class:`NodeInvalidError`, one with a top-level
``"error"`` raises :class:`RemoteError`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from hostql import OSQUERY_VERSION
from hostql.agent.flags import FlagValues

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 16.0
MAX_REDIRECTS = 10
# osquery's cipher list (TLS 1.3 suites are not affected by it).
CIPHERS = (
    "ECDH+AESGCM:DH+AESGCM:ECDH+AES256:DH+AES256:ECDH+AES128:DH+AES:ECDH+3DES:DH+3DES:"
    "RSA+AESGCM:RSA+AES:RSA+3DES:!aNULL:!MD5:!CBC:!SHA:!DSS:!kDHE:!kRSA"
)

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class RemoteError(Exception):
    """A TLS request that did not succeed; the message says why."""


class NodeInvalidError(RemoteError):
    """The server answered ``"node_invalid": true``: the node key is not accepted."""


def flag_str(flags: FlagValues, name: str) -> str:
    return str(flags.get(name))


def flag_int(flags: FlagValues, name: str) -> int:
    value = flags.get(name)
    return int(value) if not isinstance(value, str) else int(value or 0)


def flag_bool(flags: FlagValues, name: str) -> bool:
    return bool(flags.get(name))


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """The transport-level flags, read once when the transport is made."""

    hostname: str
    server_certs: str = ""
    client_cert: str = ""
    client_key: str = ""
    proxy_hostname: str = ""
    accept_gzip: bool = False
    session_reuse: bool = True
    session_timeout: int = 3600

    @classmethod
    def from_flags(cls, flags: FlagValues) -> TLSSettings:
        return cls(
            hostname=flag_str(flags, "tls_hostname"),
            server_certs=flag_str(flags, "tls_server_certs"),
            client_cert=flag_str(flags, "tls_client_cert"),
            client_key=flag_str(flags, "tls_client_key"),
            proxy_hostname=flag_str(flags, "proxy_hostname"),
            accept_gzip=flag_bool(flags, "tls_accept_gzip"),
            session_reuse=flag_bool(flags, "tls_session_reuse"),
            session_timeout=flag_int(flags, "tls_session_timeout"),
        )


@dataclass(frozen=True, slots=True)
class Response:
    """A successful answer: the raw body text and its parsed object."""

    status_code: int
    text: str
    body: dict[str, Any]


def ssl_context(settings: TLSSettings) -> ssl.SSLContext:
    """A client context that trusts only ``--tls_server_certs``."""
    if not settings.server_certs:
        raise RemoteError("--tls_server_certs is empty: no certificate to verify the server against")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.set_ciphers(CIPHERS)
    except ssl.SSLError:  # an OpenSSL build that knows none of them: keep its defaults
        log.debug("osquery's cipher list is not supported by this OpenSSL; using its defaults")
    try:
        if os.path.isdir(settings.server_certs):
            ctx.load_verify_locations(capath=settings.server_certs)
        else:
            ctx.load_verify_locations(cafile=settings.server_certs)
    except (OSError, ssl.SSLError) as exc:
        raise RemoteError(f"cannot load --tls_server_certs {settings.server_certs}: {exc}") from None
    if settings.client_cert or settings.client_key:
        if not (settings.client_cert and settings.client_key):
            raise RemoteError("--tls_client_cert and --tls_client_key must be given together")
        try:
            ctx.load_cert_chain(settings.client_cert, settings.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise RemoteError(f"cannot load the TLS client certificate: {exc}") from None
    return ctx


def parse_body(content: bytes) -> tuple[str, dict[str, Any]]:
    """Decode a response body by osquery's rules; raises RemoteError on a bad one."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteError("Request failed: response is not UTF-8") from None
    if not text.strip():
        return text, {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RemoteError(f"Request failed: response is not JSON ({exc.msg})") from None
    if not isinstance(body, dict):
        raise RemoteError("Request failed: response is not a JSON object")
    if body.get("node_invalid") is True:
        raise NodeInvalidError("Request failed: Invalid node key")
    if "error" in body:
        raise RemoteError(f"Request failed: {body['error']}")
    return text, body


class TLSTransport:
    """POSTs JSON to the TLS server over one reused, pinned HTTPS connection pool."""

    def __init__(self, settings: TLSSettings, *, clock: Clock = time.monotonic) -> None:
        if not settings.hostname:
            raise RemoteError("--tls_hostname is empty: no TLS server to talk to")
        self.settings = settings
        self._clock = clock
        self._ssl = ssl_context(settings)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._client_born = 0.0

    @classmethod
    def from_flags(cls, flags: FlagValues) -> TLSTransport:
        return cls(TLSSettings.from_flags(flags))

    def url(self, path: str) -> str:
        return f"https://{self.settings.hostname}{path}"

    def _new_client(self) -> httpx.Client:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"osquery/{OSQUERY_VERSION}",
        }
        client = httpx.Client(
            verify=self._ssl,
            trust_env=False,  # no proxy or CA bundle taken from the environment
            proxy=f"http://{self.settings.proxy_hostname}" if self.settings.proxy_hostname else None,
            timeout=REQUEST_TIMEOUT,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            limits=httpx.Limits(keepalive_expiry=float(max(self.settings.session_timeout, 1))),
            headers=headers,
        )
        if self.settings.accept_gzip:
            client.headers["Accept-Encoding"] = "gzip"
        else:
            del client.headers["Accept-Encoding"]
        return client

    def _client_for_request(self) -> httpx.Client:
        with self._lock:
            now = self._clock()
            expired = (
                self._client is not None
                and self.settings.session_timeout > 0
                and now - self._client_born >= self.settings.session_timeout
            )
            if self._client is None or expired or not self.settings.session_reuse:
                old, self._client = self._client, self._new_client()
                self._client_born = now
                if old is not None:
                    old.close()
            return self._client

    def _drop_client(self, client: httpx.Client) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()

    def post(self, path: str, body: dict[str, Any], *, node_key: str = "", compress: bool = False) -> Response:
        """One request (plus one silent reconnect if a kept-alive connection was closed)."""
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers: dict[str, str] = {}
        if node_key:
            headers["Authorization"] = f"NodeKey {node_key}"
        if compress:
            payload = gzip.compress(payload, compresslevel=9)
            headers["Content-Encoding"] = "gzip"
        url = self.url(path)
        for attempt in (1, 2):
            client = self._client_for_request()
            try:
                reply = client.post(url, content=payload, headers=headers)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                # The server closed a kept-alive connection under us: reconnect once.
                self._drop_client(client)
                if attempt == 1:
                    log.debug("TLS connection to %s was closed (%s); reconnecting", url, exc)
                    continue
                raise RemoteError(f"Request failed: {url}: {describe(exc)}") from None
            except httpx.HTTPError as exc:
                self._drop_client(client)
                raise RemoteError(f"Request failed: {url}: {describe(exc)}") from None
            finally:
                if not self.settings.session_reuse:
                    self._drop_client(client)
            text, parsed = parse_body(reply.content)
            return Response(reply.status_code, text, parsed)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def describe(exc: BaseException) -> str:
    """A short reason for a transport exception (certificate errors included)."""
    text = str(exc)
    context = exc.__context__ or exc.__cause__
    while context is not None and not text:
        text = str(context)
        context = context.__context__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
