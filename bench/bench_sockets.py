"""Time a netlink sock_diag dump of all TCP+UDP sockets against /proc/net parsing.

Usage: .venv/bin/python bench/bench_sockets.py [seconds]   (default budget ~10 s)
Both readers run alternately in the same process; medians are printed in ms.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from hostql.tables.linux import net_procfs
from hostql.tables.linux.sockdiag import SocketEntry, dump_inet_sockets

PROC_KINDS = ((2, 6), (10, 6), (2, 17), (10, 17))


def proc_dump() -> list[SocketEntry]:
    out: list[SocketEntry] = []
    for family, protocol in PROC_KINDS:
        out.extend(net_procfs.read_inet("/proc/net", family, protocol))
    return out


def netlink_all() -> list[SocketEntry]:
    return dump_inet_sockets()


def netlink_listening() -> list[SocketEntry]:
    return dump_inet_sockets(listening_only=True)


def main() -> None:
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    readers: dict[str, Callable[[], list[SocketEntry]]] = {
        "netlink (all TCP+UDP)": netlink_all,
        "netlink (TCP LISTEN + UDP)": netlink_listening,
        "/proc/net tcp,tcp6,udp,udp6": proc_dump,
    }
    times: dict[str, list[float]] = {name: [] for name in readers}
    counts: dict[str, int] = {}
    for reader in readers.values():  # warm up (module loads, page cache)
        reader()
    deadline = time.monotonic() + budget * 0.9
    rounds = 0
    while time.monotonic() < deadline and rounds < 2000:
        for name, reader in readers.items():
            start = time.perf_counter()
            counts[name] = len(reader())
            times[name].append((time.perf_counter() - start) * 1e3)
        rounds += 1
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:30s} median {value:7.3f} ms  min {min(times[name]):7.3f} ms  ({counts[name]} sockets)")
    ratio = medians["/proc/net tcp,tcp6,udp,udp6"] / medians["netlink (all TCP+UDP)"]
    print(f"rounds: {rounds}; /proc parse / netlink dump = {ratio:.1f}x")


if __name__ == "__main__":
    main()
