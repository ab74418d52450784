"""The HTTP protocol the server runs under uvicorn: uvicorn's, with two changes.

* **Idle distributed reads and plain logs without ASGI.**  For ``POST`` to a
  path with a quick answer (``.../distributed/read``, ``.../log``: see
  :class:`~hostql.server.fast_read.QuickAnswer`) the protocol holds back the
  request until its body is complete and asks the quick answer first; when that
  answers from memory (the common "nothing to run", a log only forwarded), the
  response is written straight to the transport: no ASGI task, no
  request/response cycle, no middleware.  Anything
  else (work due, an unknown key, gzip, ``Expect: 100-continue``, a pipelined
  request behind an unfinished one, ``Connection: close``, access logging on) is
  replayed into uvicorn's own handling exactly as it arrived, so it is answered
  as before.  Uvicorn's parser callbacks are the interface used; they are stable
  across its releases, and the whole-system tests run every agent read through
  this path.
* **Shutdown drops idle keep-alive connections at once.**  Uvicorn closes an idle
  connection gracefully, which over TLS means sending close_notify and waiting
  for the peer's; a client idle in its connection pool (an agent between
  check-ins, a UI, an API script) never answers, so every SIGTERM waited the
  whole ``timeout_graceful_shutdown``.  An idle connection has nothing in flight:
  aborting it loses nothing, and clients reconnect.  Connections busy with a
  request still finish it first.

Built on httptools' parser (C) when it is installed, else h11 (pure Python,
without the read shortcut).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostql.server.fast_read import QuickAnswer

_OK = b"HTTP/1.1 200 OK\r\n"
_JSON_LENGTH = b"content-type: application/json\r\ncontent-length: "


def http_protocol(quick_answers: Mapping[str, QuickAnswer] | None = None, *, access_log: bool = False) -> type[Any]:
    """The protocol class for ``uvicorn.Config(http=...)``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return _graceful(H11Protocol)
    base = _graceful(HttpToolsProtocol)
    if not quick_answers or access_log:  # access lines are written by uvicorn's cycle: keep them all
        return base
    by_url = {path.encode("ascii"): quick for path, quick in quick_answers.items()}

    class ShortcutProtocol(base):  # type: ignore[misc,valid-type]
        _held: list[bytes] | None = None  # body of a request held back from uvicorn's handling
        _quick: QuickAnswer | None = None  # what may answer it

        def on_headers_complete(self) -> None:
            if self._may_shortcut():
                self._held = []
                return
            self._held = None
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self._held is None:
                super().on_body(body)
            else:
                self._held.append(body)

        def on_message_complete(self) -> None:
            held, self._held = self._held, None
            if held is None:
                super().on_message_complete()
                return
            body = b"".join(held)
            quick = self._quick
            payload = quick.answer(self.headers, body) if quick is not None and self._idle() else None
            if payload is None:  # uvicorn's own handling, as if nothing had been held back
                super().on_headers_complete()
                if body:
                    super().on_body(body)
                super().on_message_complete()
                return
            content = [_OK]
            for name, value in self.server_state.default_headers:
                content.extend((name, b": ", value, b"\r\n"))
            content.extend((_JSON_LENGTH, str(len(payload)).encode("ascii"), b"\r\n\r\n", payload))
            self.transport.write(b"".join(content))
            self.on_response_complete()  # counts the request, arms the keep-alive timer

        def _may_shortcut(self) -> bool:
            quick = self._quick = by_url.get(self.url)
            parser = self.parser
            return (quick is not None and parser.get_method() == b"POST" and not self.expect_100_continue
                    and parser.get_http_version() == "1.1" and parser.should_keep_alive()
                    and not parser.should_upgrade() and quick.may_answer(self.headers)
                    and all(name != b"transfer-encoding" for name, _ in self.headers))

        def _idle(self) -> bool:
            # A response still being written for an earlier request goes first.
            return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    return ShortcutProtocol


def _graceful(base: type[Any]) -> type[Any]:
    class Protocol(base):  # type: ignore[misc,valid-type]
        def shutdown(self) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self.transport.abort()
            else:
                super().shutdown()

    return Protocol
