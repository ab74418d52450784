"""iptables on Linux: rules as ``iptables-save -c`` prints them.

osquery reads rules through libiptc; we have no binding, so we parse the
text of the iptables-save tool when it is installed.  Without it the table
has no rows (the kernel's /proc/net/ip_tables_names lists tables, not rules).
"""

from __future__ import annotations

import logging
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

from hostql.sql.context import QueryContext

log = logging.getLogger(__name__)

_TIMEOUT = 10.0
# Names iptables-save prints for -p, in case /etc/protocols is missing.
_PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
              "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "udplite": 136, "all": 0}
COLUMNS = ("filter_name", "chain", "policy", "target", "protocol", "src_port", "dst_port", "src_ip",
           "src_mask", "iniface", "iniface_mask", "dst_ip", "dst_mask", "outiface", "outiface_mask",
           "match", "packets", "bytes")


def _protocol_number(name: str) -> int | None:
    if name.isdigit():
        return int(name)
    if name.lower() in _PROTOCOLS:
        return _PROTOCOLS[name.lower()]
    try:
        return socket.getprotobyname(name)
    except OSError:
        return None


def _address(value: str) -> tuple[str, str]:
    """``10.0.0.0/8`` -> (address, dotted netmask); a bare address is a /32."""
    address, _, prefix = value.partition("/")
    if not prefix:
        return address, "255.255.255.255"
    if "." in prefix:
        return address, prefix
    bits = int(prefix)
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF if bits else 0
    return address, socket.inet_ntoa(mask.to_bytes(4, "big"))


def _iface_mask(name: str) -> str:
    # iptables matches the name plus its NUL byte, or only the prefix before '+'.
    length = len(name) - 1 if name.endswith("+") else len(name) + 1
    return "FF" * length


def _ports(value: str) -> str:
    # "22" -> "22:22", "1024:" -> "1024:65535": osquery prints ranges.
    if ":" not in value:
        return f"{value}:{value}"
    low, high = value.split(":", 1)
    return f"{low or 0}:{high or 65535}"


def parse_rule(words: list[str]) -> dict[str, Any]:
    """Fields of one ``-A CHAIN ...`` rule (the words after the chain name)."""
    row: dict[str, Any] = {"target": "", "protocol": 0, "src_port": "", "dst_port": "",
                           "src_ip": "0.0.0.0", "src_mask": "0.0.0.0", "dst_ip": "0.0.0.0",
                           "dst_mask": "0.0.0.0", "iniface": "all", "iniface_mask": "",
                           "outiface": "all", "outiface_mask": "", "match": "no"}
    port_match = False
    sport = dport = None
    invert = ""
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word == "!":
            invert = "!"
            i += 1
            continue
        if word in ("-p", "--protocol"):
            # osquery's "!6" is no integer: an inverted protocol reads as NULL.
            row["protocol"] = None if invert else _protocol_number(value)
        elif word in ("-s", "--source"):
            address, row["src_mask"] = _address(value)
            row["src_ip"] = invert + address
        elif word in ("-d", "--destination"):
            address, row["dst_mask"] = _address(value)
            row["dst_ip"] = invert + address
        elif word in ("-i", "--in-interface"):
            row["iniface"], row["iniface_mask"] = invert + value, _iface_mask(value)
        elif word in ("-o", "--out-interface"):
            row["outiface"], row["outiface_mask"] = invert + value, _iface_mask(value)
        elif word in ("-j", "--jump", "-g", "--goto"):
            row["target"] = value
        elif word in ("-m", "--match"):
            row["match"] = "yes"
            port_match = port_match or value in ("tcp", "udp")
        elif word in ("--sport", "--source-port"):
            sport = value
        elif word in ("--dport", "--destination-port"):
            dport = value
        else:
            i += 1  # an option of a match or target module: skip the word only
            invert = ""
            continue
        invert = ""
        i += 2
    if port_match:
        row["src_port"] = _ports(sport) if sport else "0:65535"
        row["dst_port"] = _ports(dport) if dport else "0:65535"
    return row


def parse_iptables_save(text: str) -> list[tuple[Any, ...]]:
    """Rows in spec order: each chain's rules, then the chain's own row."""
    rows: list[tuple[Any, ...]] = []
    table = ""
    chains: dict[str, tuple[str, int, int]] = {}  # chain -> (policy, packets, bytes)
    rules: dict[str, list[dict[str, Any]]] = {}

    def flush() -> None:
        for chain, (policy, packets, nbytes) in chains.items():
            base = {"filter_name": table, "chain": chain, "policy": policy}
            for rule in rules.get(chain, []):
                rows.append(tuple({**base, **rule}.get(c) for c in COLUMNS))
            rows.append(tuple({**base, "packets": packets, "bytes": nbytes}.get(c) for c in COLUMNS))

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            table, chains, rules = line[1:], {}, {}
        elif line == "COMMIT":
            flush()
            chains, rules = {}, {}
        elif line.startswith(":"):
            parts = line[1:].split()
            packets = nbytes = 0
            if len(parts) > 2 and parts[2].startswith("["):
                packets, nbytes = (int(x) for x in parts[2].strip("[]").split(":"))
            chains[parts[0]] = ("" if len(parts) < 2 or parts[1] == "-" else parts[1], packets, nbytes)
        else:
            packets = nbytes = 0
            if line.startswith("["):
                counters, _, line = line.partition(" ")
                packets, nbytes = (int(x) for x in counters.strip("[]").split(":"))
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            if len(words) < 2 or words[0] not in ("-A", "--append"):
                continue
            rule = parse_rule(words[2:])
            rule["packets"], rule["bytes"] = packets, nbytes
            rules.setdefault(words[1], []).append(rule)
    return rows


def gen_iptables(ctx: QueryContext) -> Iterator[tuple[Any, ...]]:
    binary = shutil.which("iptables-save")
    if binary is None:
        log.debug("iptables-save is not installed; iptables has no rows")
        return
    try:
        done = subprocess.run([binary, "-c"], capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("iptables-save failed: %s", exc)
        return
    if done.returncode != 0:
        log.debug("iptables-save exited %s: %s", done.returncode, done.stderr.strip())
        return
    yield from parse_iptables_save(done.stdout)
