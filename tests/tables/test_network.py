"""Network tables against the live system and parsers on fake trees."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostql.sql.connection import Connection
from hostql.sql.context import Constraint, Op, QueryContext
from hostql.tables.linux import net_iptables, net_routes, network
from hostql.tables.linux.net_arp import parse_arp, read_arp
from hostql.tables.linux.net_sockets import gen_process_open_sockets
from hostql.tables.registry import get_spec

PID = os.getpid()


def _rows(db: Any, sql: str) -> list[dict[str, Any]]:
    result = db.execute(sql)
    return [dict(zip(result.columns, row)) for row in result.rows]


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def _ipv6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


# --- listening_ports / process_open_sockets ---------------------------------


def test_tcp_listener_in_listening_ports(db: Any, tcp_listener: socket.socket) -> None:
    port = tcp_listener.getsockname()[1]
    rows = _rows(db, f"SELECT * FROM listening_ports WHERE port = {port} AND protocol = 6")
    assert len(rows) == 1
    row = rows[0]
    assert (row["pid"], row["family"], row["address"]) == (PID, 2, "127.0.0.1")
    assert row["fd"] == tcp_listener.fileno()
    assert row["socket"] == os.fstat(tcp_listener.fileno()).st_ino
    assert row["net_namespace"] == str(os.stat("/proc/self/ns/net").st_ino)


def test_udp_socket_in_listening_ports(db: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        rows = _rows(db, f"SELECT pid, protocol, family, address, fd, socket FROM listening_ports WHERE port = {port}")
        assert rows == [{"pid": PID, "protocol": 17, "family": 2, "address": "127.0.0.1", "fd": udp.fileno(),
                         "socket": os.fstat(udp.fileno()).st_ino}]


def test_ipv6_listener(db: Any) -> None:
    if not _ipv6_works():
        rows = _rows(db, "SELECT * FROM listening_ports WHERE family = 10 AND pid = " + str(PID))
        assert rows == []
        return
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("::1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        rows = _rows(db, f"SELECT pid, family, address, socket FROM listening_ports WHERE port = {port}")
        assert rows == [{"pid": PID, "family": 10, "address": "::1", "socket": os.fstat(sock.fileno()).st_ino}]


def test_established_connection(db: Any, tcp_listener: socket.socket) -> None:
    server_port = tcp_listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", server_port))
    accepted, _ = tcp_listener.accept()
    try:
        client_port = client.getsockname()[1]
        rows = _rows(db, f"SELECT * FROM process_open_sockets WHERE pid = {PID} AND local_port = {client_port}")
        assert len(rows) == 1
        row = rows[0]
        assert row["state"] == "ESTABLISHED"
        assert (row["remote_address"], row["remote_port"]) == ("127.0.0.1", server_port)
        assert (row["fd"], row["socket"]) == (client.fileno(), os.fstat(client.fileno()).st_ino)
        assert (row["family"], row["protocol"], row["path"]) == (2, 6, "")
        # The accepted end and the listener are there too; the connection is not a listening port.
        mine = _rows(db, f"SELECT fd, state FROM process_open_sockets WHERE pid = {PID}")
        states = {r["fd"]: r["state"] for r in mine}
        assert states[accepted.fileno()] == "ESTABLISHED"
        assert states[tcp_listener.fileno()] == "LISTEN"
        assert _rows(db, f"SELECT * FROM listening_ports WHERE port = {client_port}") == []
    finally:
        client.close()
        accepted.close()


def test_pid_constraint_limits_sockets(db: Any, tcp_listener: socket.socket) -> None:
    rows = _rows(db, f"SELECT pid, socket FROM process_open_sockets WHERE pid = {PID}")
    assert rows and {r["pid"] for r in rows} == {PID}
    assert os.fstat(tcp_listener.fileno()).st_ino in {r["socket"] for r in rows}


def test_unix_socket_path(db: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "hostql-test.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)
        sock.listen()
        inode = os.fstat(sock.fileno()).st_ino
        rows = _rows(db, f"SELECT * FROM process_open_sockets WHERE pid = {PID} AND socket = {inode}")
        assert len(rows) == 1
        assert (rows[0]["family"], rows[0]["path"], rows[0]["fd"]) == (1, path, sock.fileno())
        listening = _rows(db, f"SELECT pid, port, family, fd, socket FROM listening_ports WHERE path = '{path}'")
        assert listening == [{"pid": PID, "port": 0, "family": 1, "fd": sock.fileno(), "socket": 0}]


def test_join_listening_ports_with_processes(db: Any, tcp_listener: socket.socket) -> None:
    port = tcp_listener.getsockname()[1]
    if "processes" not in db.tables:
        pytest.fail("processes table is not registered yet")
    sql = f"SELECT p.name, l.port FROM listening_ports l JOIN processes p USING (pid) WHERE l.port = {port}"
    rows = db.execute(sql).rows
    with open(f"/proc/{PID}/comm") as handle:
        comm = handle.read().strip()
    assert rows == [(comm, port)]


def test_other_namespace_read_from_proc_pid_net(tmp_path: Path) -> None:
    """A process in another namespace: its sockets come from /proc/<pid>/net."""
    proc = tmp_path / "proc"
    (proc / "self" / "ns").mkdir(parents=True)
    os.symlink("net:[111]", proc / "self" / "ns" / "net")
    (proc / "net").mkdir()
    (proc / "net" / "tcp").write_text("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
                                      "   uid  timeout inode\n"
                                      "   0: 0100007F:0016 00000000:0000 0A 0:0 00:0 0 0 0 500 1\n")
    for pid, ns in ((7, 111), (8, 222)):
        (proc / str(pid) / "ns").mkdir(parents=True)
        os.symlink(f"net:[{ns}]", proc / str(pid) / "ns" / "net")
        (proc / str(pid) / "fd").mkdir()
    os.symlink("socket:[500]", proc / "7" / "fd" / "4")
    os.symlink("socket:[600]", proc / "8" / "fd" / "9")
    (proc / "8" / "net").mkdir()
    (proc / "8" / "net" / "udp").write_text("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when"
                                            " retrnsmt   uid  timeout inode\n"
                                            "   0: 00000000:0035 00000000:0000 07 0:0 00:0 0 0 0 600 1\n")
    spec = get_spec("process_open_sockets")
    ctx = QueryContext.for_table(spec)
    rows = sorted(gen_process_open_sockets(ctx, root=str(tmp_path)))
    assert rows == [
        (7, 4, 500, 2, 6, "127.0.0.1", "0.0.0.0", 22, 0, "", "LISTEN", "111"),
        (8, 9, 600, 2, 17, "0.0.0.0", "0.0.0.0", 53, 0, "", "", "222"),
    ]
    only_8 = QueryContext.for_table(spec, {"pid": [Constraint(Op.EQUALS, 8)]})
    assert [r[0] for r in gen_process_open_sockets(only_8, root=str(tmp_path))] == [8]


# --- interfaces ----------------------------------------------------------------


def test_lo_interface_address(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM interface_addresses WHERE interface = 'lo' AND address = '127.0.0.1'")
    assert len(rows) == 1
    assert rows[0]["mask"] == "255.0.0.0"
    assert rows[0]["type"] == "unknown"


def test_interface_addresses_match_if_inet6(db: Any) -> None:
    """Every IPv6 address the kernel lists in /proc/net/if_inet6 is reported."""
    try:
        text = Path("/proc/net/if_inet6").read_text()
    except OSError:
        text = ""
    expected = set()
    for line in text.splitlines():
        hexaddr, _idx, prefix, _scope, _flags, name = line.split()
        addr = socket.inet_ntop(socket.AF_INET6, bytes.fromhex(hexaddr))
        if addr.startswith("fe80:"):
            addr += "%" + name
        expected.add((name, addr, int(prefix, 16)))
    rows = _rows(db, "SELECT interface, address, mask FROM interface_addresses WHERE address LIKE '%:%'")
    got = {(r["interface"], r["address"], _prefix_len(r["mask"])) for r in rows}
    assert expected == got


def _prefix_len(mask: str) -> int:
    return bin(int.from_bytes(socket.inet_pton(socket.AF_INET6, mask), "big")).count("1")


def test_lo_interface_details(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM interface_details WHERE interface = 'lo'")
    assert len(rows) == 1
    row = rows[0]
    assert row["mtu"] == int(Path("/sys/class/net/lo/mtu").read_text())
    assert row["mac"] == "00:00:00:00:00:00"
    assert row["flags"] & 0x8  # IFF_LOOPBACK
    assert row["ipackets"] >= 0 and row["last_change"] == -1
    names = {r["interface"] for r in _rows(db, "SELECT interface FROM interface_details")}
    assert names == set(os.listdir("/sys/class/net"))


def _fake_sys(tmp_path: Path) -> Path:
    for name, index, flags, mtu, mac, itype in (("lo", 1, "0x9", 65536, "00:00:00:00:00:00", 772),
                                                ("eth0", 2, "0x1003", 1500, "52:54:00:12:34:56", 1)):
        d = tmp_path / "sys" / "class" / "net" / name
        d.mkdir(parents=True)
        for key, value in (("ifindex", index), ("flags", flags), ("mtu", mtu), ("address", mac), ("type", itype),
                           ("operstate", "unknown" if name == "lo" else "up"), ("carrier", 1), ("speed", 1000)):
            (d / key).write_text(f"{value}\n")
        conf = tmp_path / "proc" / "sys" / "net" / "ipv6" / "conf" / name
        conf.mkdir(parents=True)
        for key, value in (("hop_limit", 64), ("forwarding", 1 if name == "eth0" else 0),
                           ("accept_redirects", 1), ("accept_ra", 1)):
            (conf / key).write_text(f"{value}\n")
    conf_all = tmp_path / "proc" / "sys" / "net" / "ipv6" / "conf" / "all"
    conf_all.mkdir(parents=True)
    (conf_all / "accept_redirects").write_text("0\n")
    (tmp_path / "proc" / "net").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc" / "net" / "dev").write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls"
        " carrier compressed\n"
        "    lo:    100       2    0    0    0     0          0         0      100       2    0    0    0     0"
        "       0          0\n"
        "  eth0: 5000      40    1    2    0     0          0         0     6000      50    3    4    0     5"
        "       0          0\n")
    return tmp_path


def test_interface_details_fake_tree(tmp_path: Path) -> None:
    root = str(_fake_sys(tmp_path))
    ctx = QueryContext.for_table(get_spec("interface_details"), columns_used=["interface", "link_speed"])
    rows = {r[0]: r for r in network.details_rows(ctx, root)}
    assert list(rows) == ["lo", "eth0"]
    lo, eth = rows["lo"], rows["eth0"]
    assert lo[1:6] == ("00:00:00:00:00:00", 4, 65536, 0, 0x10049)
    assert eth[1:6] == ("52:54:00:12:34:56", 1, 1500, 0, 0x11043)
    assert eth[6:15] == (40, 50, 5000, 6000, 1, 3, 2, 4, 5)
    assert eth[15:17] == (-1, 1000)
    assert len(eth) == len(get_spec("interface_details").columns)


def test_interface_ipv6_fake_tree(tmp_path: Path) -> None:
    root = str(_fake_sys(tmp_path))
    # lo: host, redirects on locally -> 1, RA accepted; eth0 forwards -> both needed (global 0) -> 0, RA off.
    assert list(network.ipv6_rows(root)) == [("lo", 64, 0, 1, 1), ("eth0", 64, 1, 0, 0)]


def test_interface_ipv6_live(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM interface_ipv6 WHERE interface = 'lo'")
    expected = Path("/proc/sys/net/ipv6/conf/lo/hop_limit")
    assert len(rows) == 1
    assert rows[0]["hop_limit"] == (int(expected.read_text()) if expected.exists() else -1)


# --- routes / arp / iptables -------------------------------------------------------


def test_routes_contain_proc_net_route(db: Any) -> None:
    rows = _rows(db, "SELECT * FROM routes")
    got = {(r["destination"], r["netmask"], r["gateway"], r["interface"], r["metric"]) for r in rows}
    lines = Path("/proc/net/route").read_text().splitlines()[1:]
    assert lines, "this host has IPv4 routes"
    for line in lines:
        f = line.split()
        dest = socket.inet_ntoa(int(f[1], 16).to_bytes(4, "little"))
        gw_raw = int(f[2], 16).to_bytes(4, "little")
        gateway = socket.inet_ntoa(gw_raw) if any(gw_raw) else None
        prefix = bin(int(f[7], 16)).count("1")
        netmask = 0 if prefix == 32 else prefix
        assert (dest, netmask, gateway, f[0], int(f[6])) in got
    assert {r["type"] for r in rows} <= {"gateway", "local", "broadcast", "anycast", "other"}


def test_route_parsers(tmp_path: Path) -> None:
    net = tmp_path / "proc" / "net"
    net.mkdir(parents=True)
    (net / "route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t1400\t0\t0\n")
    (net / "ipv6_route").write_text(
        "fd000000000000000000000000000000 40 00000000000000000000000000000000 00"
        " 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
        "00000000000000000000000000000001 80 00000000000000000000000000000000 00"
        " 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n")
    (tmp_path / "sys" / "class" / "net" / "eth0").mkdir(parents=True)
    (tmp_path / "sys" / "class" / "net" / "eth0" / "ifindex").write_text("2\n")
    entries = net_routes.read_proc_routes(str(tmp_path))
    names = {2: "eth0"}
    rows = [net_routes.route_row(e, dict(names)) for e in entries]
    assert rows == [
        ("0.0.0.0", 0, "192.0.2.1", None, 0, "eth0", 0, 100, "gateway", 0),
        ("192.0.2.0", 24, None, None, 0, "eth0", 1400, 0, "gateway", 0),
        ("fd00::", 64, None, None, 0, "eth0", 0, 256, "gateway", 0),
        ("::1", 0, None, None, 0, None, 0, 0, "local", 0),
    ]


ARP_TEXT = """IP address       HW type     Flags       HW address            Mask     Device
192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0
10.0.0.9         0x1         0x6         aa:bb:cc:dd:ee:ff     *        eth1
"""


def test_arp_parser_and_live(db: Any, tmp_path: Path) -> None:
    assert parse_arp(ARP_TEXT) == [("192.0.2.1", "02:fc:00:00:00:05", "eth0", "0"),
                                   ("10.0.0.9", "aa:bb:cc:dd:ee:ff", "eth1", "1")]
    (tmp_path / "proc" / "net").mkdir(parents=True)
    (tmp_path / "proc" / "net" / "arp").write_text(ARP_TEXT)
    assert len(read_arp(str(tmp_path))) == 2
    assert read_arp(str(tmp_path / "missing")) == []
    live = db.execute("SELECT address, mac, interface, permanent FROM arp_cache").rows
    assert sorted(live) == sorted(read_arp())


IPTABLES_SAVE = """# Generated by iptables-save v1.8.7 on Mon Jan  1 00:00:00 2024
*filter
:INPUT DROP [120:9000]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [50:4000]
:LOGDROP - [0:0]
[10:600] -A INPUT -i lo -j ACCEPT
[5:300] -A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT
[0:0] -A INPUT -p udp -m udp --sport 53 --dport 1024:65535 -j ACCEPT
[1:60] -A INPUT ! -i eth+ -m state --state INVALID -j LOGDROP
[0:0] -A LOGDROP -j DROP
COMMIT
"""


def test_iptables_parser() -> None:
    rows = [dict(zip(net_iptables.COLUMNS, r)) for r in net_iptables.parse_iptables_save(IPTABLES_SAVE)]
    assert [(r["chain"], r["target"]) for r in rows] == [
        ("INPUT", "ACCEPT"), ("INPUT", "ACCEPT"), ("INPUT", "ACCEPT"), ("INPUT", "LOGDROP"), ("INPUT", None),
        ("FORWARD", None), ("OUTPUT", None), ("LOGDROP", "DROP"), ("LOGDROP", None)]
    lo, ssh, dns, invalid, input_chain = rows[:5]
    assert (lo["iniface"], lo["iniface_mask"], lo["protocol"], lo["match"]) == ("lo", "FFFFFF", 0, "no")
    assert lo["packets"] == 10
    assert (ssh["src_ip"], ssh["src_mask"], ssh["protocol"], ssh["dst_port"], ssh["src_port"]) == (
        "10.0.0.0", "255.0.0.0", 6, "22:22", "0:65535")
    assert (dns["protocol"], dns["src_port"], dns["dst_port"]) == (17, "53:53", "1024:65535")
    assert (invalid["iniface"], invalid["iniface_mask"]) == ("!eth+", "FFFFFF")
    assert (invalid["match"], invalid["src_port"]) == ("yes", "")
    assert (input_chain["policy"], input_chain["packets"], input_chain["bytes"]) == ("DROP", 120, 9000)
    assert rows[-1]["policy"] == "" and rows[0]["filter_name"] == "filter"


def test_iptables_live(db: Any) -> None:
    rows = db.execute("SELECT * FROM iptables").rows
    if shutil.which("iptables-save") is None:
        assert rows == []
    else:
        assert all(len(r) == 18 for r in rows)


# --- portable generators ---------------------------------------------------------


@pytest.fixture
def portable_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    monkeypatch.setenv("HOSTQL_PORTABLE", "1")
    conn = Connection()
    yield conn
    conn.close()


def test_portable_listening_and_open_sockets(portable_db: Connection, tcp_listener: socket.socket) -> None:
    port = tcp_listener.getsockname()[1]
    rows = _rows(portable_db, f"SELECT pid, protocol, family, address, fd FROM listening_ports WHERE port = {port}")
    assert rows == [{"pid": PID, "protocol": 6, "family": 2, "address": "127.0.0.1", "fd": tcp_listener.fileno()}]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = tcp_listener.accept()
    try:
        client_port = client.getsockname()[1]
        rows = _rows(portable_db, f"SELECT state, remote_port, fd FROM process_open_sockets WHERE pid = {PID}"
                                  f" AND local_port = {client_port}")
        assert rows == [{"state": "ESTABLISHED", "remote_port": port, "fd": client.fileno()}]
    finally:
        client.close()
        accepted.close()


def test_portable_interfaces(portable_db: Connection) -> None:
    rows = _rows(portable_db, "SELECT * FROM interface_addresses WHERE interface = 'lo' AND address = '127.0.0.1'")
    assert len(rows) == 1 and rows[0]["mask"] == "255.0.0.0"
    lo = _rows(portable_db, "SELECT mtu, ipackets FROM interface_details WHERE interface = 'lo'")
    assert lo[0]["mtu"] == int(Path("/sys/class/net/lo/mtu").read_text())
    assert lo[0]["ipackets"] >= 0
