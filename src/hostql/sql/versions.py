"""Version comparison as osquery's version_compare and VERSION collations do it."""

from __future__ import annotations

from collections.abc import Callable


def _compare_plain(a: str, b: str) -> int:
    """Compare dot/dash separated versions, numeric parts numerically."""
    pa = _split(a)
    pb = _split(b)
    for x, y in zip(pa, pb):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


def _split(v: str) -> list[str]:
    out: list[str] = []
    cur = ""
    for ch in v:
        if ch in ".-_+~:":
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


COLLATIONS: dict[str, Callable[[str, str], int]] = {
    "VERSION": _compare_plain,
    "VERSION_ARCH": _compare_plain,
    "VERSION_DPKG": _compare_plain,
    "VERSION_RHEL": _compare_plain,
}
