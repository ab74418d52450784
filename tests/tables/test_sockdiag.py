"""The netlink sock_diag reader and the /proc/net socket parsers."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostql.tables.linux import net_procfs
from hostql.tables.linux.net_owners import list_pids, net_namespace, socket_owners
from hostql.tables.linux.sockdiag import SockDiag, SocketEntry, dump_inet_sockets, unix_name


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_netlink_dump_finds_listening_socket(tcp_listener: socket.socket) -> None:
    port = tcp_listener.getsockname()[1]
    inode = os.fstat(tcp_listener.fileno()).st_ino
    found = [e for e in dump_inet_sockets() if e.inode == inode]
    assert len(found) == 1
    entry = found[0]
    assert (entry.family, entry.protocol, entry.local_address, entry.local_port) == (2, 6, "127.0.0.1", port)
    assert (entry.remote_port, entry.state) == (0, 10)


def test_netlink_listening_only_skips_connections(tcp_listener: socket.socket) -> None:
    client = socket.create_connection(tcp_listener.getsockname())
    server, _ = tcp_listener.accept()
    try:
        client_inode = os.fstat(client.fileno()).st_ino
        all_inodes = {e.inode for e in dump_inet_sockets()}
        listening = dump_inet_sockets(listening_only=True)
        assert client_inode in all_inodes
        assert client_inode not in {e.inode for e in listening}
        assert all(e.state == 10 for e in listening if e.protocol == 6)
    finally:
        client.close()
        server.close()


def test_netlink_matches_proc_net(tcp_listener: socket.socket) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        def key(e: SocketEntry) -> tuple[int, int, str, int, int]:
            return (e.inode, e.protocol, e.local_address, e.local_port, e.remote_port)

        netlink = {key(e) for e in dump_inet_sockets() if e.inode}
        proc = {key(e) for p in (6, 17) for f in (2, 10)
                for e in net_procfs.read_inet("/proc/net", f, p) if e.inode}
        # Sockets may open or close between the two reads; ours must be in both.
        mine = {os.fstat(tcp_listener.fileno()).st_ino, os.fstat(udp.fileno()).st_ino}
        assert {k for k in netlink if k[0] in mine} == {k for k in proc if k[0] in mine}
        assert len({k[0] for k in netlink if k[0] in mine}) == 2
    finally:
        udp.close()


def test_netlink_unix_socket_path(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    try:
        inode = os.fstat(sock.fileno()).st_ino
        with SockDiag() as diag:
            entries = [e for e in diag.unix() if e.inode == inode]
        assert [(e.family, e.path) for e in entries] == [(1, path)]
    finally:
        sock.close()


def test_unix_name_formats() -> None:
    assert unix_name(b"/run/x.sock\0") == "/run/x.sock"
    assert unix_name(b"\0abstract\0name") == "@abstract@name"
    assert unix_name(b"") == ""


TCP_TEXT = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 8327 1 0 100 0 0 10 0
   1: 0100007F:D0BC 0100007F:1111 01 00000000:00000000 00:00000000 00000000     0        0 5523 1 0 20 4 30 10 -1
   2: 0100007F:CFBE 0100007F:1111 06 00000000:00000000 03:00000B5C 00000000     0        0 0 3
   garbage line
"""
TCP6_TEXT = (
    "  sl  local_address                         remote_address                        st tx_queue rx_queue"
    " tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000001000000:1111 00000000000000000000000000000000:0000 0A 0:0 00:0 0 999 0 6191\n"
    "   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A 0:0 00:0 0 0 0 77 1\n"
)
UNIX_TEXT = """\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 4517 /var/run/postgresql/.s.PGSQL.5432
0000000000000000: 00000002 00000000 00010000 0001 01 4600 @/tmp/.X11-unix/X0
0000000000000000: 00000003 00000000 00000000 0001 03 4518
"""
PACKET_TEXT = """\
sk               RefCnt Type Proto  Iface R Rmem   User   Inode
0000000000000000 3      3    0003   2     1 0      0      9001
"""


def _fake_net(base: Path) -> Path:
    net = base / "proc" / "net"
    net.mkdir(parents=True)
    (net / "tcp").write_text(TCP_TEXT)
    (net / "tcp6").write_text(TCP6_TEXT)
    (net / "unix").write_text(UNIX_TEXT)
    (net / "packet").write_text(PACKET_TEXT)
    return net


def test_parse_proc_net_tcp(tmp_path: Path) -> None:
    net = _fake_net(tmp_path)
    entries = net_procfs.read_inet(str(net), 2, 6)
    assert [(e.local_address, e.local_port, e.remote_address, e.remote_port, e.state, e.inode) for e in entries] == [
        ("127.0.0.1", 3306, "0.0.0.0", 0, 10, 8327),
        ("127.0.0.1", 53436, "127.0.0.1", 4369, 1, 5523),
        ("127.0.0.1", 53182, "127.0.0.1", 4369, 6, 0),
    ]
    six = net_procfs.read_inet(str(net), 10, 6)
    assert [(e.family, e.local_address, e.local_port, e.inode) for e in six] == [
        (10, "::1", 4369, 6191), (10, "::ffff:127.0.0.1", 8080, 77)]


def test_parse_proc_net_unix_and_packet(tmp_path: Path) -> None:
    net = _fake_net(tmp_path)
    unix = net_procfs.read_unix(str(net))
    assert [(e.family, e.inode, e.path, e.state) for e in unix] == [
        (1, 4517, "/var/run/postgresql/.s.PGSQL.5432", 1), (1, 4600, "@/tmp/.X11-unix/X0", 1), (1, 4518, "", 3)]
    packet = net_procfs.read_packet(str(net))
    assert [(e.family, e.protocol, e.inode) for e in packet] == [(17, 3, 9001)]
    # Missing files (udp here) are simply empty.
    assert net_procfs.read_inet(str(net), 2, 17) == []
    assert len(net_procfs.read_all(str(net))) == 3 + 2 + 3 + 1


def test_socket_owners_on_fake_tree(tmp_path: Path) -> None:
    fd_dir = tmp_path / "proc" / "42" / "fd"
    fd_dir.mkdir(parents=True)
    os.symlink("socket:[8327]", fd_dir / "3")
    os.symlink("/dev/null", fd_dir / "0")
    os.symlink("pipe:[77]", fd_dir / "1")
    ns_dir = tmp_path / "proc" / "42" / "ns"
    ns_dir.mkdir()
    os.symlink("net:[4026531840]", ns_dir / "net")
    (tmp_path / "proc" / "net").mkdir()
    assert list_pids(str(tmp_path)) == [42]
    assert socket_owners(str(tmp_path), [42, 43]) == {8327: (42, 3)}
    assert net_namespace(str(tmp_path), 42) == 4026531840
    assert net_namespace(str(tmp_path), 43) is None


def test_socket_owners_live(tcp_listener: socket.socket) -> None:
    inode = os.fstat(tcp_listener.fileno()).st_ino
    owners = socket_owners("/", [os.getpid()])
    assert owners[inode] == (os.getpid(), tcp_listener.fileno())
