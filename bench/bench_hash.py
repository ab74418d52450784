"""Hash throughput of the ``hash`` table vs coreutils on the same ~200 MB file.

The file is written once (so both sides read it from the page cache), hashed
by ``SELECT sha256 FROM hash`` with the cache disabled and by ``sha256sum``,
and then by all three digests vs ``md5sum``, ``sha1sum`` and ``sha256sum`` run
one after another.  The file is deleted at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_seconds, report
from hostql.agent.flags import FlagValues
from hostql.runtime import Runtime
from hostql.sql.connection import Connection

SIZE = 200 * 1024 * 1024
RUNS = 3
TOOL_TIMEOUT = 120


def _write(path: str) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(SIZE // len(block)):
            fh.write(block)


def _tools(path: str, *names: str) -> None:
    for name in names:
        subprocess.run([name, path], check=True, stdout=subprocess.DEVNULL, timeout=TOOL_TIMEOUT)


def main() -> None:
    missing = [t for t in ("md5sum", "sha1sum", "sha256sum") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench_hash needs {', '.join(missing)}")
    runtime = Runtime(flags=FlagValues({"disable_hash_cache": True, "read_max": SIZE * 2}))
    fd, path = tempfile.mkstemp(prefix="hostql-bench-hash-")
    os.close(fd)
    try:
        _write(path)
        megabytes = SIZE / 1e6
        with Connection(runtime) as db:
            cases = (("sha256", ("sha256sum",)), ("md5, sha1, sha256", ("md5sum", "sha1sum", "sha256sum")))
            for columns, tools in cases:
                sql = f"SELECT {columns} FROM hash WHERE path = ?"
                ours = median_seconds(lambda sql=sql: db.execute(sql, (path,)), RUNS)
                base = median_seconds(lambda tools=tools: _tools(path, *tools), RUNS)
                print(f"[{columns}] hash table {megabytes / ours:.0f} MB/s, "
                      f"{'+'.join(tools)} {megabytes / base:.0f} MB/s")
                report(f"hash {columns} of {megabytes:.0f} MB", ours, base, "+".join(tools), unit="s")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
