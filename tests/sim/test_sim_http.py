"""The simulator's HTTP/1.1 client against a scripted asyncio server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from dbservers import free_port

from hostql.sim.http import ConnectError, HttpPool, RemoteProtocolError, ServerDisconnected, Timeout

Handler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


async def run(handler: Handler, client: Callable[[HttpPool], Awaitable[object]],
              timeout: float = 5.0) -> tuple[object, int]:
    """Serve ``handler`` (told each connection's number) and run ``client``: its result, connections made."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await handler(connections, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    pool = HttpPool(f"http://127.0.0.1:{port}", timeout=timeout)
    try:
        result = await client(pool)
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()
    return result, connections


def test_keep_alive_reuses_one_connection_and_sends_the_body() -> None:
    seen: list[bytes] = []

    async def handler(_: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(answer(b'{"ok":true}'))

    async def client(pool: HttpPool) -> object:
        return [await pool.post("/api/osquery/config", b'{"node_key":"k"}', {"User-Agent": "osquery/5"})
                for _ in range(3)]

    responses, connections = asyncio.run(run(handler, client))
    assert connections == 1
    assert [(r.status_code, r.content) for r in responses] == [(200, b'{"ok":true}')] * 3  # type: ignore[attr-defined]
    assert seen[0].startswith(b"POST /api/osquery/config HTTP/1.1\r\n")
    assert seen[0].endswith(b'\r\n\r\n{"node_key":"k"}')
    assert b"User-Agent: osquery/5\r\n" in seen[0] and b"Content-Length: 16\r\n" in seen[0]


def test_an_idle_connection_the_server_closed_is_replaced_transparently() -> None:
    async def handler(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(f'{{"connection":{number}}}'.encode()))
        await writer.drain()
        if number == 1:
            await reader.readexactly(1)  # the next request's first byte arrives: close without answering

    async def client(pool: HttpPool) -> object:
        return [(await pool.post("/x", b"{}", {})).content for _ in range(2)]

    bodies, connections = asyncio.run(run(handler, client))
    assert bodies == [b'{"connection":1}', b'{"connection":2}'] and connections == 2


def test_connection_close_and_chunked_answers() -> None:
    async def handler(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if number == 1:
            writer.write(answer(b"{}", "Connection: close"))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;ext=1\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\nX-Trailer: y\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def client(pool: HttpPool) -> object:
        return [(await pool.post("/x", b"{}", {})).content for _ in range(2)]

    bodies, connections = asyncio.run(run(handler, client))
    assert bodies == [b"{}", b'{"a": 1}'] and connections == 2  # "Connection: close" is honoured


@pytest.mark.parametrize(("reply", "error"), [
    (b"", ServerDisconnected),  # a new connection closed without a word is not sent again
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", ServerDisconnected),
    (b"SSH-2.0-OpenSSH\r\n\r\n", RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", RemoteProtocolError),
])
def test_broken_answers_raise_a_named_error(reply: bytes, error: type[Exception]) -> None:
    async def handler(_: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    async def client(pool: HttpPool) -> object:
        with pytest.raises(error):
            await pool.post("/x", b"{}", {})
        return None

    asyncio.run(run(handler, client))


def test_no_answer_is_a_timeout_and_a_closed_port_a_connect_error() -> None:
    async def handler(_: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    async def client(pool: HttpPool) -> object:
        with pytest.raises(Timeout):
            await pool.post("/x", b"{}", {})
        return None

    asyncio.run(run(handler, client, timeout=0.3))

    async def refused() -> None:
        pool = HttpPool(f"http://127.0.0.1:{free_port()}", timeout=5)
        with pytest.raises(ConnectError):
            await pool.post("/x", b"{}", {})

    asyncio.run(refused())
    with pytest.raises(ValueError, match="not an http"):
        HttpPool("ftp://example.com")


def test_the_simulation_holds_at_most_connections_requests_and_connections() -> None:
    from hostql.sim.agent import SimContext, SimOptions
    from hostql.sim.stats import SimStats
    from hostql.sim.template import Templates

    in_flight = peak = 0

    async def handler(_: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, peak
        while True:
            await read_request(reader)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1
            writer.write(answer(b"{}"))
            await writer.drain()

    async def client(pool: HttpPool) -> object:
        ctx = SimContext(SimOptions(server="http://unused", enroll_secret="s", connections=2), pool, SimStats(),
                         Templates())
        replies = await asyncio.gather(*(ctx.post("config", {"node_key": "k"}) for _ in range(8)))
        return [reply.body for reply in replies]

    bodies, connections = asyncio.run(run(handler, client))
    assert bodies == [{}] * 8 and connections == 2 and peak == 2
