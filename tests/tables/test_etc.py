"""etc_hosts (hosts), etc_services, etc_protocols and dns_resolvers."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from hostql.tables.common.etc_files import (
    RES_DEFAULT_OPTIONS,
    RES_ROTATE,
    RES_SNGLKUPREOP,
    RES_TRUSTAD,
    RES_USE_EDNS0,
    etc_paths,
    parse_hosts,
    parse_protocols,
    parse_resolv_conf,
    parse_services,
    read_hosts,
    read_protocols,
    read_resolvers,
    read_services,
    resolver_rows,
)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _own_hosts_parse(text: str) -> list[tuple[str, str | None]]:
    """The test's own reading of a hosts file: drop comments, first field is the address."""
    rows = []
    for line in text.splitlines():
        words = line.partition("#")[0].split()
        if words:
            rows.append((words[0], " ".join(words[1:]) or None))
    return rows


# --- parsers on fake files -----------------------------------------------------------


def test_hosts_comments_tabs_and_aliases(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "etc/hosts",
        "# leading comment\n"
        "127.0.0.1\tlocalhost\n"
        "\n"
        "   ::1   localhost  ip6-localhost\tip6-loopback   # trailing comment\n"
        "10.0.0.5 db.example.org db#not-a-name\n"
        "192.0.2.7\n"
        "\t# indented comment\n",
    )
    assert read_hosts(str(tmp_path)) == [
        ("127.0.0.1", "localhost"),
        ("::1", "localhost ip6-localhost ip6-loopback"),
        ("10.0.0.5", "db.example.org db"),
        ("192.0.2.7", None),
    ]


def test_missing_files_give_no_rows(tmp_path: Path) -> None:
    assert read_hosts(str(tmp_path)) == []
    assert read_services(str(tmp_path)) == []
    assert read_protocols(str(tmp_path)) == []
    assert read_resolvers(str(tmp_path)) is None


def test_services_aliases_and_comments(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "etc/services",
        "# Network services\n"
        "tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer\n"
        "smtp\t\t25/tcp\t\tmail\n"
        "kerberos\t88/udp\t\tkerberos5 krb5 kerberos-sec\t# Kerberos v5\n"
        "odd\t\t99/tcp\t\t# first # second #\n"
        "broken\t\tnoport\n"
        "broken2\t\tx/tcp\n"
        "lonely\n",
    )
    assert read_services(str(tmp_path)) == [
        ("tcpmux", 1, "tcp", "", "TCP port service multiplexer"),
        ("smtp", 25, "tcp", "mail", None),
        ("kerberos", 88, "udp", "kerberos5 krb5 kerberos-sec", "Kerberos v5"),
        ("odd", 99, "tcp", "", "first # second"),
    ]


def test_protocols_alias_and_comment() -> None:
    text = (
        "# Internet protocols\n"
        "ip\t0\tIP\t\t# internet protocol, pseudo protocol number\n"
        "tcp\t6\tTCP\t\t# transmission control protocol\n"
        "bare\t200\n"
        "bad\tsix\tBAD\n"
    )
    assert parse_protocols(text) == [
        ("ip", 0, "IP", "internet protocol, pseudo protocol number"),
        ("tcp", 6, "TCP", "transmission control protocol"),
        ("bare", 200, None, None),
    ]


def test_resolv_conf_like_glibc(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "etc/resolv.conf",
        "; comment\n"
        "# comment\n"
        "domain old.example\n"
        "search a.example b.example\n"
        "nameserver 192.0.2.1\n"
        "nameserver not-an-address\n"
        "nameserver 2001:db8::53\n"
        "nameserver 192.0.2.3\n"
        "nameserver 192.0.2.4\n"
        "sortlist 130.155.160.0/255.255.240.0 10.1.0.0 192.168.3.0&255.255.255.0 bad/1\n"
        "options ndots:2 rotate edns0 single-request-reopen trust-ad timeout:1\n",
    )
    config = read_resolvers(str(tmp_path))
    assert config is not None
    # glibc keeps three servers at most and drops unparsable ones.
    assert config.nameservers == ["192.0.2.1", "2001:db8::53", "192.0.2.3"]
    # The last search/domain line wins.
    assert config.search == ["a.example", "b.example"]
    assert config.sortlist == [("130.155.160.0", "20"), ("10.1.0.0", "8"), ("192.168.3.0", "24")]
    assert config.options == RES_DEFAULT_OPTIONS | RES_ROTATE | RES_USE_EDNS0 | RES_SNGLKUPREOP | RES_TRUSTAD
    assert list(resolver_rows(config)) == [
        (0, "nameserver", "192.0.2.1", "32", config.options),
        (1, "nameserver", "2001:db8::53", "128", config.options),
        (2, "nameserver", "192.0.2.3", "32", config.options),
        (0, "sortlist", "130.155.160.0", "20", config.options),
        (1, "sortlist", "10.1.0.0", "8", config.options),
        (2, "sortlist", "192.168.3.0", "24", config.options),
        (0, "search", "a.example", None, config.options),
        (1, "search", "b.example", None, config.options),
    ]


def test_resolv_conf_search_defaults() -> None:
    # No search line: glibc searches the domain of the host name.
    assert parse_resolv_conf("nameserver 10.0.0.1\n", "web1.corp.example").search == ["corp.example"]
    assert parse_resolv_conf("nameserver 10.0.0.1\n", "web1").search == []
    # "domain" replaces an earlier "search" and vice versa.
    assert parse_resolv_conf("search a b\ndomain c\n").search == ["c"]
    # "searchx" is not the search keyword.
    assert parse_resolv_conf("searchx a\n").search == []
    assert parse_resolv_conf("").options == RES_DEFAULT_OPTIONS == 0x2C1


def test_hosts_parse_matches_own_parse_on_fake_file() -> None:
    text = "1.2.3.4\ta  b\n#x\n5.6.7.8 c # d\n"
    assert parse_hosts(text) == _own_hosts_parse(text)


def test_windows_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEMROOT", "D:\\Win")
    hosts = etc_paths("hosts", windows=True)
    assert [os.path.basename(p.replace("\\", "/")) for p in hosts] == ["hosts", "hosts.ics"]
    assert all(p.startswith("D:\\Win") and "drivers" in p for p in hosts)
    # Windows calls the protocols file "protocol".
    assert etc_paths("protocols", windows=True)[0].replace("\\", "/").endswith("etc/protocol")
    assert etc_paths("services", "/x", windows=False) == ["/x/etc/services"]


def test_services_parser_keeps_slashless_lines_out() -> None:
    assert parse_services("svc 10\nsvc2 10/tcp/x\n") == []


# --- the live host --------------------------------------------------------------------


def _query(db: Any, sql: str) -> list[tuple[Any, ...]]:
    return list(db.execute(sql).rows)


def test_live_etc_hosts_and_alias(db: Any) -> None:
    try:
        expected = _own_hosts_parse(Path("/etc/hosts").read_text())
    except FileNotFoundError:
        expected = []
    assert _query(db, "SELECT address, hostnames FROM etc_hosts") == expected
    assert _query(db, "SELECT * FROM hosts") == expected


def test_live_etc_hosts_in_own_namespace(db: Any) -> None:
    pid = os.getpid()
    rows = _query(db, f"SELECT address, hostnames, pid_with_namespace FROM etc_hosts WHERE pid_with_namespace = {pid}")
    host = _query(db, "SELECT address, hostnames FROM etc_hosts")
    assert rows == [(*row, pid) for row in host]
    # The hidden column is 0 for the host view, and is not part of SELECT *.
    assert db.execute("SELECT * FROM etc_hosts").columns == ("address", "hostnames")
    assert {r[0] for r in _query(db, "SELECT pid_with_namespace FROM etc_hosts")} <= {0}


def test_live_etc_services(db: Any) -> None:
    rows = _query(db, "SELECT name, port, protocol, aliases FROM etc_services")
    if not Path("/etc/services").exists():
        assert rows == []
        return
    assert ("ssh", 22, "tcp") in [r[:3] for r in rows]
    # The C library's own lookup agrees with every tcp/udp row (a name may also be
    # an alias of an earlier entry, which the C library then finds first).
    ports: dict[tuple[str, str], set[int]] = {}
    for name, port, protocol, aliases in rows:
        for word in [name, *aliases.split()]:
            ports.setdefault((word, protocol), set()).add(port)
    for name, port, protocol, _aliases in rows:
        if protocol in ("tcp", "udp"):
            assert socket.getservbyname(name, protocol) in ports[(name, protocol)], (name, protocol)
            assert socket.getservbyport(port, protocol) in {r[0] for r in rows if r[1:3] == (port, protocol)}


def test_live_etc_protocols(db: Any) -> None:
    rows = _query(db, "SELECT name, number FROM etc_protocols")
    if not Path("/etc/protocols").exists():
        assert rows == []
        return
    assert ("tcp", 6) in rows
    for name, number in rows:
        assert socket.getprotobyname(name) == number


def _glibc_resolver() -> tuple[int, int, list[str]]:
    """(options, nscount, IPv4 servers) from glibc's own res_init(), read from _res."""
    libc = ctypes.CDLL("libc.so.6")
    libc.__res_state.restype = ctypes.c_void_p
    assert libc.__res_init() == 0
    state = libc.__res_state()
    # struct __res_state: int retrans, int retry, unsigned long options, int nscount,
    # struct sockaddr_in nsaddr_list[3]
    options = ctypes.c_ulong.from_address(state + 8).value
    nscount = ctypes.c_int.from_address(state + 16).value
    servers = []
    for i in range(min(nscount, 3)):
        entry = ctypes.string_at(state + 20 + 16 * i, 16)
        if int.from_bytes(entry[:2], "little") == socket.AF_INET:
            servers.append(socket.inet_ntoa(entry[4:8]))
    return options, nscount, servers


def test_live_dns_resolvers(db: Any) -> None:
    rows = _query(db, "SELECT id, type, address, netmask, options FROM dns_resolvers")
    path = Path("/etc/resolv.conf")
    if not path.exists():
        assert rows == []
        return
    own = []
    for line in path.read_text().splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "nameserver":
            try:
                ipaddress.ip_address(words[1])
            except ValueError:
                continue
            own.append(words[1])
    servers = [r[2] for r in rows if r[1] == "nameserver"]
    assert servers == own[:3]
    assert [r[0] for r in rows if r[1] == "nameserver"] == list(range(len(servers)))
    # glibc's resolver state is the independent ground truth for the option bits.
    options, nscount, glibc_v4 = _glibc_resolver()
    if servers:
        assert nscount == len(servers)
        assert {r[4] for r in rows} == {options}
        assert [s for s in servers if ":" not in s] == glibc_v4
    own_pid = _query(db, f"SELECT address FROM dns_resolvers WHERE pid_with_namespace = {os.getpid()}")
    assert own_pid == [(r[2],) for r in rows]


def test_pid_without_view_gives_no_rows(db: Any) -> None:
    assert _query(db, "SELECT * FROM etc_hosts WHERE pid_with_namespace = -5") == []
