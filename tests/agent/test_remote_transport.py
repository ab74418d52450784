"""The TLS transport against a real HTTPS server: pinning, headers, body rules, retries."""

from __future__ import annotations

import gzip
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from tls_server import CONFIG, ENROLL, LOG, TLSTestServer, make_agent

from hostql import OSQUERY_VERSION
from hostql.agent.remote.transport import (
    NodeInvalidError,
    RemoteError,
    TLSSettings,
    TLSTransport,
    parse_body,
    ssl_context,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TLSTestServer]:
    with TLSTestServer(tmp_path) as srv:
        srv.state.check_keys = False
        yield srv


def transport(server: TLSTestServer, **kw: object) -> TLSTransport:
    settings = TLSSettings(hostname=server.hostname, server_certs=str(server.ca_path), **kw)  # type: ignore[arg-type]
    return TLSTransport(settings)


def test_post_sends_json_with_osquery_headers(server: TLSTestServer) -> None:
    t = transport(server)
    try:
        reply = t.post(CONFIG, {"node_key": "k1"}, node_key="k1")
    finally:
        t.close()
    assert reply.body == server.state.config
    (req,) = server.to(CONFIG)
    assert req.body == {"node_key": "k1"}
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.headers["user-agent"] == f"osquery/{OSQUERY_VERSION}"
    assert req.headers["authorization"] == "NodeKey k1"
    assert "gzip" not in req.headers.get("accept-encoding", "")
    assert "content-encoding" not in req.headers


def test_no_authorization_header_without_a_node_key(server: TLSTestServer) -> None:
    t = transport(server)
    try:
        t.post(ENROLL, {"enroll_secret": server.state.secret})
    finally:
        t.close()
    assert "authorization" not in server.to(ENROLL)[0].headers


def test_server_signed_by_another_ca_is_refused(server: TLSTestServer, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    t = TLSTransport(TLSSettings(hostname=server.hostname, server_certs=str(other)))
    try:
        with pytest.raises(RemoteError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            t.post(CONFIG, {})
    finally:
        t.close()
    assert server.requests == []


def test_hostname_must_match_the_certificate(tmp_path: Path) -> None:
    with TLSTestServer(tmp_path, names=("server.example",)) as srv:
        t = transport(srv)
        try:
            with pytest.raises(RemoteError, match=r"IP address mismatch|hostname|match"):
                t.post(CONFIG, {})
        finally:
            t.close()
        assert srv.requests == []


def test_client_certificate_is_presented_when_configured(tmp_path: Path) -> None:
    with TLSTestServer(tmp_path, require_client_cert=True) as srv:
        srv.state.check_keys = False
        without = transport(srv)
        try:
            with pytest.raises(RemoteError):
                without.post(CONFIG, {})
        finally:
            without.close()
        assert srv.requests == []
        cert, key = srv.client_cert_files()
        t = transport(srv, client_cert=cert, client_key=key)
        try:
            t.post(CONFIG, {"node_key": "x"})
        finally:
            t.close()
        (req,) = srv.to(CONFIG)
        assert req.client_cert


def test_context_pins_the_bundle_and_needs_tls12(server: TLSTestServer) -> None:
    ctx = ssl_context(TLSSettings(hostname="x", server_certs=str(server.ca_path)))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1  # the pinned CA only, no system store
    with pytest.raises(RemoteError, match="tls_server_certs"):
        ssl_context(TLSSettings(hostname="x", server_certs=str(server.directory / "missing.pem")))


def test_body_rules_ignore_the_status_code(server: TLSTestServer) -> None:
    t = transport(server)
    try:
        server.status_code = 500
        server.handlers[CONFIG] = lambda r: {"schedule": {}}
        assert t.post(CONFIG, {}).body == {"schedule": {}}
        server.handlers[CONFIG] = lambda r: b""
        assert t.post(CONFIG, {}).body == {}
        server.handlers[CONFIG] = lambda r: b"<html>oops</html>"
        with pytest.raises(RemoteError, match="not JSON"):
            t.post(CONFIG, {})
        server.handlers[CONFIG] = lambda r: {"node_invalid": True}
        with pytest.raises(NodeInvalidError):
            t.post(CONFIG, {})
        server.handlers[CONFIG] = lambda r: {"error": "nope"}
        with pytest.raises(RemoteError, match="Request failed: nope"):
            t.post(CONFIG, {})
    finally:
        t.close()


def test_parse_body_rules() -> None:
    assert parse_body(b"  \n") == ("  \n", {})
    assert parse_body(b'{"node_invalid": false, "a": 1}')[1] == {"node_invalid": False, "a": 1}
    with pytest.raises(RemoteError, match="not a JSON object"):
        parse_body(b"[1, 2]")
    with pytest.raises(NodeInvalidError):
        parse_body(b'{"node_invalid": true, "error": "x"}')


def test_gzip_request_body_and_accepted_gzip_response(server: TLSTestServer) -> None:
    t = transport(server, accept_gzip=True)
    try:
        reply = t.post(LOG, {"node_key": "k", "log_type": "result", "data": [{"a": "b"}]}, compress=True)
    finally:
        t.close()
    assert reply.body == {}
    (req,) = server.to(LOG)
    assert req.headers["content-encoding"] == "gzip"
    assert req.headers["accept-encoding"] == "gzip"
    assert gzip.decompress(req.raw).startswith(b'{"node_key":"k","log_type":"result"')
    assert req.body["data"] == [{"a": "b"}]


def test_redirects_are_followed(server: TLSTestServer) -> None:
    server.redirects["/old/config"] = CONFIG
    t = transport(server)
    try:
        assert t.post("/old/config", {"node_key": "k"}).body == server.state.config
    finally:
        t.close()
    assert [r.path for r in server.requests] == ["/old/config", CONFIG]
    assert server.to(CONFIG)[0].body == {"node_key": "k"}


def test_connection_is_reused(server: TLSTestServer) -> None:
    t = transport(server)
    try:
        for _ in range(4):
            t.post(CONFIG, {})
    finally:
        t.close()
    assert server.connections_accepted == 1


def test_server_closing_after_each_response_is_transparent(server: TLSTestServer) -> None:
    server.close_after_response = True
    t = transport(server)
    try:
        for i in range(5):
            assert t.post(LOG, {"i": i}).body == {}
    finally:
        t.close()
    assert [r.body["i"] for r in server.to(LOG)] == [0, 1, 2, 3, 4]  # each sent exactly once
    assert server.connections_accepted == 5  # a new connection each time, silently


def test_server_down_is_a_failure_and_up_again_works(server: TLSTestServer) -> None:
    t = transport(server)
    try:
        t.post(CONFIG, {})
        server.down()
        with pytest.raises(RemoteError, match="Request failed"):
            t.post(CONFIG, {})
        server.up()
        assert t.post(CONFIG, {}).body == server.state.config
    finally:
        t.close()


def test_client_retries_with_square_waits(server: TLSTestServer, tmp_path: Path) -> None:
    agent = make_agent(server, tmp_path)
    try:
        agent.client.call(CONFIG, lambda key: {"node_key": key})  # enrolls
        server.down()
        with pytest.raises(RemoteError):
            agent.client.call(CONFIG, lambda key: {"node_key": key}, attempts=4)
        assert agent.sleeps == [1, 4, 9]
        server.up()
        server.handlers[CONFIG] = flaky(2, server.state.config)
        agent.sleeps.clear()
        assert agent.client.call(CONFIG, lambda key: {"node_key": key}, attempts=3).body == server.state.config
        assert agent.sleeps == [1, 4]
    finally:
        agent.close()


def flaky(failures: int, answer: object) -> object:
    left = [failures]

    def handler(record: object) -> object:
        if left[0] > 0:
            left[0] -= 1
            return {"error": "busy"}
        return answer

    return handler
