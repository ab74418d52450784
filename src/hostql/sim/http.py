"""A lean HTTP/1.1 keep-alive client for the simulator: POST only, one pool of connections.

The simulator must generate far more load than the server it measures, on the
same two cores.  A general client pays per request for what the simulator never
uses (redirects, auth flows, cookies, a pool that inspects every connection on
every request); this one writes the request, reads the status line, headers and
body (``Content-Length`` or chunked) and gives the connection back.

Like osquery's client it reconnects transparently when the server closed an idle
keep-alive connection: a request that fails on a reused connection before any
byte of the answer arrived is sent again, once, on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
CLOSE_WAIT = 2.0  # seconds aclose() waits for the connections to close


class HttpError(Exception):
    """Base of every failure; the class name is what the simulator's report counts."""


class ConnectError(HttpError):
    """The TCP or TLS connection could not be set up."""


class Timeout(HttpError):
    """No complete answer within the request timeout."""


class ServerDisconnected(HttpError):
    """The server closed the connection before the answer was complete."""


class RemoteProtocolError(HttpError):
    """The answer was not valid HTTP/1.1."""


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class _NothingReceived(Exception):
    """The connection ended before the first byte of the answer (safe to send again)."""


class HttpPool:
    """Keep-alive connections to the server of ``base_url``, reused: one is opened only when none
    is idle, so there are never more than the requests ever in flight at once.  The caller bounds
    those (the simulator: :attr:`hostql.sim.agent.SimContext.slots`, ``--connections``)."""

    def __init__(self, base_url: str, *, verify: ssl.SSLContext | None = None, timeout: float = 16.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = verify if verify is not None else ssl.create_default_context()
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._host_header = parts.netloc
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()

    async def post(self, path: str, content: bytes, headers: dict[str, str]) -> Response:
        head = [f"POST {self.prefix}{path} HTTP/1.1", f"Host: {self._host_header}", f"Content-Length: {len(content)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(request)
        except TimeoutError:
            raise Timeout(f"no answer within {self.timeout:g} s") from None

    async def _exchange(self, request: bytes) -> Response:
        connection, reused = self._take_idle(), True
        if connection is None:
            connection, reused = await self._connect(), False
        try:
            try:
                response = await self._send(connection, request)
            except _NothingReceived:
                self._discard(connection)
                if not reused:
                    raise ServerDisconnected("the server closed the connection without answering") from None
                connection = await self._connect()  # the server had closed the idle connection
                response = await self._send(connection, request)
        except _NothingReceived:
            self._discard(connection)
            raise ServerDisconnected("the server closed the connection without answering") from None
        except BaseException:
            self._discard(connection)
            raise
        if response.headers.get("connection", "").lower() == "close":
            self._discard(connection)
        else:
            self._idle.append(connection)
        return response

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()  # the most recently used is the least likely to have been closed
            if connection.usable():
                return connection
            self._discard(connection)
        return None

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None,
                limit=MAX_HEADER_BYTES)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    def _discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.close()

    async def _send(self, connection: _Connection, request: bytes) -> Response:
        reader = connection.reader
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _NothingReceived from None
            raise ServerDisconnected("the server closed the connection in the middle of an answer") from None
        except (ConnectionError, ssl.SSLError):
            raise _NothingReceived from None
        except asyncio.LimitOverrunError:
            raise RemoteProtocolError(f"answer headers longer than {MAX_HEADER_BYTES} bytes") from None
        try:
            status, headers = _parse_head(head)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = await _read_chunked(reader)
            else:
                body = await reader.readexactly(int(headers.get("content-length", "0")))
        except asyncio.IncompleteReadError:
            raise ServerDisconnected("the server closed the connection in the middle of an answer") from None
        except (ConnectionError, ssl.SSLError) as exc:
            raise ServerDisconnected(f"connection lost in the middle of an answer: {exc}") from None
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise RemoteProtocolError(f"malformed answer: {exc}") from None
        return Response(status, headers, body)

    async def aclose(self) -> None:
        """Close every connection and wait (briefly) until they are closed, so that none is
        left for the garbage collector when the event loop ends."""
        self._idle.clear()
        closing = list(self._open)
        self._open.clear()
        for connection in closing:
            connection.close()
        if closing:
            await asyncio.wait([asyncio.ensure_future(c.wait_closed()) for c in closing], timeout=CLOSE_WAIT)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"status line {status_line[:80]!r}")
    status = int(rest.split(" ", 1)[0])
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16):
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailer fields: none of the simulator's business
    return b"".join(parts)
