"""Plausible answers for simulated hosts: real rows from this machine, varied per host.

The first time any simulated host must run a given SQL text (a detail,
label, policy or additional query, or a discovery query), the text is run
once on this machine with :mod:`hostql`'s SQL engine in one worker thread;
every host then answers from that cached template, with its identity
columns (hostname, uuid, serial, addresses, uptime, ...) replaced by its own.
Live queries (``fleet_distributed_query_*``) are not run: they get a small
synthetic row set (see :func:`live_rows`).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

HOST_DETAIL_TABLES = ("os_version", "osquery_info", "platform_info", "system_info")
MAX_ROWS = 2000
SQL_TIMEOUT = 60.0
Rows = list[dict[str, str]]


@dataclass(frozen=True)
class Identity:
    """What makes one simulated host different from the others."""

    index: int
    uuid: str
    instance_id: str
    hostname: str
    serial: str
    ip: str
    mac: str
    uptime: int
    disk_available_fraction: float

    @classmethod
    def make(cls, index: int, seed: int, prefix: str = "sim") -> Identity:
        rng = random.Random(seed * 1_000_003 + index)
        host_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
        mac = "02:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))
        return cls(index=index, uuid=host_uuid, instance_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   hostname=f"{prefix}-{seed}-{index:05d}", serial=f"SIM{seed:02d}{index:07d}",
                   ip=f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}", mac=mac,
                   uptime=rng.randrange(600, 60 * 86400), disk_available_fraction=rng.uniform(0.05, 0.9))


def stringify(value: Any) -> str:
    """A column value as osquery sends it (strings only; NULL is the empty string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        text = repr(value)
        return text if "." in text or "e" in text else text + ".0"
    return str(value)


_NAME_COLUMNS = frozenset({"hostname", "computer_name", "local_hostname"})
_UUID_COLUMNS = frozenset({"uuid", "host_uuid"})
_SERIAL_COLUMNS = frozenset({"hardware_serial", "board_serial", "serial"})
VARIED_COLUMNS = _NAME_COLUMNS | _UUID_COLUMNS | _SERIAL_COLUMNS | frozenset(
    {"instance_id", "address", "mac", "total_seconds", "pid", "blocks_available"})


def vary_row(row: dict[str, str], ident: Identity) -> dict[str, str]:
    """``row`` with this host's identity in the columns that name a host."""
    out = dict(row)
    for key, value in row.items():
        if key in _NAME_COLUMNS:
            out[key] = ident.hostname
        elif key in _UUID_COLUMNS:
            out[key] = ident.uuid
        elif key == "instance_id":
            out[key] = ident.instance_id
        elif key in _SERIAL_COLUMNS:
            out[key] = ident.serial
        elif key == "address" and value.count(".") == 3 and not value.startswith("127."):
            out[key] = ident.ip
        elif key == "mac" and value and value != "00:00:00:00:00:00":
            out[key] = ident.mac
        elif key == "total_seconds":
            out[key] = str(ident.uptime)
        elif key == "pid":
            out[key] = str(1000 + ident.index % 60000)
        elif key == "blocks_available" and value.isdigit() and "blocks" in row and row["blocks"].isdigit():
            out[key] = str(int(int(row["blocks"]) * ident.disk_available_fraction))
    return out


def live_rows(ident: Identity, count: int) -> Rows:
    """The small row set every simulated host answers a live query with."""
    return [{"hostname": ident.hostname, "uuid": ident.uuid, "row": str(i)} for i in range(count)]


class Templates:
    """Runs each distinct SQL text once on this machine and caches the rows (or the error)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hostql-sim-sql")
        self._connection: Any = None
        self._cache: dict[str, asyncio.Future[tuple[Rows, str]]] = {}
        self.host_details: dict[str, dict[str, str]] = {}

    def _run(self, sql: str) -> tuple[Rows, str]:
        if self._connection is None:
            import hostql

            self._connection = hostql.connect()
        try:
            rows = self._connection.query(sql)
        except Exception as exc:  # the SQL error becomes the host's answer (status 1)
            return [], str(exc) or exc.__class__.__name__
        return [{str(k): stringify(v) for k, v in row.items()} for row in rows[:MAX_ROWS]], ""

    async def rows(self, sql: str) -> tuple[Rows, str]:
        """``(rows, error)`` of ``sql`` on this machine; run once, shared by every host."""
        future = self._cache.get(sql)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._cache[sql] = future
            try:
                result = await asyncio.wait_for(loop.run_in_executor(self._executor, self._run, sql), SQL_TIMEOUT)
            except TimeoutError:
                result = ([], f"query took longer than {SQL_TIMEOUT:g} s")
            future.set_result(result)
        return await asyncio.shield(future)

    async def load_host_details(self) -> None:
        """The first row of each enroll ``host_details`` table, gathered once."""
        for table in HOST_DETAIL_TABLES:
            rows, _ = await self.rows(f"SELECT * FROM {table} LIMIT 1")
            if rows:
                self.host_details[table] = rows[0]

    def details_for(self, ident: Identity) -> dict[str, dict[str, str]]:
        details = {table: vary_row(row, ident) for table, row in self.host_details.items()}
        system = details.setdefault("system_info", {})
        system.update(hostname=ident.hostname, uuid=ident.uuid, computer_name=ident.hostname,
                      hardware_serial=ident.serial)
        info = details.setdefault("osquery_info", {})
        info.update(uuid=ident.uuid, instance_id=ident.instance_id)
        return details

    def needs_vary(self, sql: str) -> bool:
        """Whether the cached rows of ``sql`` have a per-host column (else they are shared as they are)."""
        future = self._cache.get(sql)
        if future is None or not future.done():
            return True
        rows, _ = future.result()
        return bool(rows) and not VARIED_COLUMNS.isdisjoint(rows[0])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
