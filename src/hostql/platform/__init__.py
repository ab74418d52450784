"""The platform facade: which generator set this process uses.

Like psutil's ``_psplatform``, the choice is made once.  Every spec names a
generator per platform and optionally a portable (psutil) one; this module
decides which key applies.  ``HOSTQL_PORTABLE=1`` forces the portable
generators on Linux so the code macOS and Windows run is exercised here too.
"""

from __future__ import annotations

import os
import sys

from hostql.tables.spec import DARWIN, LINUX, PORTABLE, WINDOWS


def current_platform() -> str:
    """The osquery platform name of this host: linux, darwin or windows."""
    if sys.platform.startswith("linux"):
        return LINUX
    if sys.platform == "darwin":
        return DARWIN
    if sys.platform in ("win32", "cygwin"):
        return WINDOWS
    raise NotImplementedError(f"hostql does not support the platform {sys.platform!r}")


def portable_forced() -> bool:
    """True when the portable generators must be used even where native ones exist."""
    return os.environ.get("HOSTQL_PORTABLE", "") not in ("", "0", "false")


def implementation_key(implementations: dict[str, str], platform: str | None = None) -> str | None:
    """The key of the generator to use from a spec's ``implementations``."""
    platform = platform or current_platform()
    if portable_forced() and PORTABLE in implementations:
        return PORTABLE
    if platform in implementations:
        return platform
    if PORTABLE in implementations:
        return PORTABLE
    return None
