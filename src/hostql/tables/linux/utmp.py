"""Reader of glibc utmp/wtmp files (fixed 384-byte ``struct utmp`` records).

The layout is the one glibc uses on 64-bit Linux (x86_64, aarch64): the time
is stored as two int32 fields so that 32- and 64-bit programs share the file.

    offset size field
         0    2 ut_type        (short, then 2 bytes of padding)
         4    4 ut_pid
         8   32 ut_line        (tty, NUL padded, not always NUL terminated)
        40    4 ut_id
        44   32 ut_user
        76  256 ut_host
       332    4 ut_exit        (two shorts)
       336    4 ut_session
       340    8 ut_tv          (int32 seconds, int32 microseconds)
       348   16 ut_addr_v6
       364   20 unused
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

RECORD = struct.Struct("<h2xi32s4s32s256shhiii16s20x")
RECORD_SIZE = RECORD.size  # 384

# ut_type values from <utmp.h>.
EMPTY = 0
RUN_LVL = 1
BOOT_TIME = 2
NEW_TIME = 3
OLD_TIME = 4
INIT_PROCESS = 5
LOGIN_PROCESS = 6
USER_PROCESS = 7
DEAD_PROCESS = 8
ACCOUNTING = 9

# Read many records per system call; wtmp files grow to megabytes.
_CHUNK = RECORD_SIZE * 512


class UtmpRecord(NamedTuple):
    type: int
    pid: int
    line: str
    id: str
    user: str
    host: str
    exit_termination: int
    exit_status: int
    session: int
    tv_sec: int
    tv_usec: int
    addr: bytes


def _text(raw: bytes) -> str:
    # Fields are NUL padded but a full-width value has no terminator at all.
    return raw.partition(b"\0")[0].decode("utf-8", "replace")


def _record(fields: tuple[Any, ...]) -> UtmpRecord:
    (ut_type, pid, line, ut_id, user, host, e_term, e_exit, session, sec, usec, addr) = fields
    return UtmpRecord(
        ut_type, pid, _text(line), _text(ut_id), _text(user), _text(host),
        e_term, e_exit, session, sec, usec, addr,
    )


def decode(raw: bytes) -> UtmpRecord:
    """One record from exactly :data:`RECORD_SIZE` bytes."""
    return _record(RECORD.unpack(raw))


def read_records(path: str) -> Iterator[UtmpRecord]:
    """Every complete record of a utmp/wtmp file, in file order.

    A missing or unreadable file yields nothing; a torn record at the end
    (a writer racing us) is ignored.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, generator may stop early
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return
    with f:
        tail = b""
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            data = tail + chunk if tail else chunk
            whole = len(data) - len(data) % RECORD_SIZE
            for fields in RECORD.iter_unpack(memoryview(data)[:whole]):
                yield _record(fields)
            tail = data[whole:]
        if tail:
            log.debug("%s ends with a partial record of %d bytes", path, len(tail))
