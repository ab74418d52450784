"""The dev-mode CA and server certificate: trusted for localhost names, kept across starts."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

from cryptography import x509

from hostql.server.devcerts import ensure_dev_certs


def _handshake(certs_dir: Path, server_name: str) -> None:
    """A real TLS handshake over a socket pair, verified against ca.pem for ``server_name``."""
    import socket

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs_dir / "server.pem", certs_dir / "server-key.pem")
    client_ctx = ssl.create_default_context(cafile=str(certs_dir / "ca.pem"))
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as tls:
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(left, server_hostname=server_name) as tls:
            assert tls.recv(2) == b"ok"
    finally:
        thread.join(timeout=10)
    assert not errors


def test_certificates_verify_for_local_names(tmp_path: Path) -> None:
    paths = ensure_dev_certs(tmp_path, ["hq.local"])
    for name in ("localhost", "127.0.0.1", "hq.local"):
        _handshake(tmp_path, name)
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert paths.ca_key.stat().st_mode & 0o077 == 0 and paths.server_key.stat().st_mode & 0o077 == 0


def test_certificates_are_kept_and_renewed_when_needed(tmp_path: Path) -> None:
    first = ensure_dev_certs(tmp_path)
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    ensure_dev_certs(tmp_path)
    assert first.ca_cert.read_bytes() == ca and first.server_cert.read_bytes() == server
    # A new name needs a new server certificate from the same CA.
    ensure_dev_certs(tmp_path, ["10.1.2.3"])
    assert first.ca_cert.read_bytes() == ca and first.server_cert.read_bytes() != server
    _handshake(tmp_path, "10.1.2.3")
    # A damaged key is replaced, with the chain still valid.
    first.server_key.write_text("garbage")
    ensure_dev_certs(tmp_path)
    _handshake(tmp_path, "localhost")
