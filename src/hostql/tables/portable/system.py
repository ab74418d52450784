from __future__ import annotations
import os
from collections.abc import Iterator
from hostql.sql.context import QueryContext

def gen_load_average(ctx: QueryContext) -> Iterator[tuple[str, str]]:
    for period, value in zip(("1m", "5m", "15m"), os.getloadavg()):
        yield period, f"{value:.6f}"
