"""Reading host files through a root path, so readers can be pointed at fake trees."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def under_root(root: str, path: str) -> str:
    """``path`` (absolute on the host) as seen below ``root``."""
    return os.path.join(root, path.lstrip("/"))


def read_text(path: str) -> str | None:
    """The file's text (undecodable bytes replaced), or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None
