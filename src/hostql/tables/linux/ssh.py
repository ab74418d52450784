"""OpenSSH material per user: authorized_keys, known_hosts, private keys, client config.

These are ``user_data`` tables: whose home directories are read is decided by
:func:`users_for_context` (the uid constraint, else the current user).  Paths
in the results are the paths as seen from ``root``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from hostql.sql.context import QueryContext
from hostql.tables.common.users_accounts import in_root, namespace_roots, users_for_context
from hostql.tables.common.users_sshkeys import inspect_private_key

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

AUTHORIZED_KEYS_FILES = (".ssh/authorized_keys", ".ssh/authorized_keys2")
KNOWN_HOSTS_FILE = ".ssh/known_hosts"
USER_CONFIG_FILE = ".ssh/config"
SYSTEM_CONFIG_FILE = "/etc/ssh/ssh_config"
SSH_DIR = ".ssh"
# Private keys are a few KiB; anything far larger in ~/.ssh is not one.
MAX_KEY_FILE = 1 << 20

_BASE_KEY_TYPES = (
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ssh-ed448",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519@openssh.com",
)


def _cert_name(base: str) -> str:
    name, at, _domain = base.partition("@")
    return f"{name}-cert-v01@openssh.com" if at else f"{base}-cert-v01@openssh.com"


KEY_TYPES = frozenset(_BASE_KEY_TYPES) | frozenset(_cert_name(t) for t in _BASE_KEY_TYPES)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            return f.read()
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None


def _lines(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        yield line[:-1] if line.endswith("\r") else line


# --- authorized_keys ---------------------------------------------------------------

class AuthorizedKey(NamedTuple):
    algorithm: str | None
    key: str | None
    options: str | None
    comment: str | None


def _first_field(line: str) -> tuple[str, str]:
    """Split off the first blank-separated field; blanks inside "quotes" do not count."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif ch in " \t" and not quoted:
            return line[:i], line[i:].lstrip(" \t")
    return line, ""


def parse_authorized_key(line: str) -> AuthorizedKey | None:
    """One authorized_keys line: ``[options] type base64 [comment]``; None for no key."""
    line = line.strip(" \t\r")
    if not line or line.startswith("#"):
        return None
    first, rest = _first_field(line)
    options: str | None = None
    if first not in KEY_TYPES:
        options = first
        first, rest = _first_field(rest)
        if first not in KEY_TYPES:
            # z/OS keys live in a RACF key ring; the line only carries options.
            if "zos-key-ring-label=" in line:
                return AuthorizedKey(None, None, line, None)
            return None
    key, comment = _first_field(rest)
    if not key:
        return None
    return AuthorizedKey(first, key, options, comment or None)


def parse_authorized_keys(text: str) -> Iterator[AuthorizedKey]:
    for line in _lines(text):
        parsed = parse_authorized_key(line)
        if parsed is not None:
            yield parsed


def gen_authorized_keys(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    for view, ns_pid in namespace_roots(ctx, root):
        for user in users_for_context(ctx, view):
            for name in AUTHORIZED_KEYS_FILES:
                path = posixpath.join(user.home, name)
                text = _read_text(in_root(view, path))
                if text is None:
                    continue
                for k in parse_authorized_keys(text):
                    yield user.uid, k.algorithm, k.key, k.options, k.comment, path, ns_pid


# --- known_hosts ----------------------------------------------------------------------

def parse_known_hosts(text: str) -> Iterator[str]:
    """Every entry line (markers such as @cert-authority and hashed hosts kept as written)."""
    for line in _lines(text):
        if line.strip() and not line.startswith("#"):
            yield line


def gen_known_hosts(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    for user in users_for_context(ctx, root):
        path = posixpath.join(user.home, KNOWN_HOSTS_FILE)
        text = _read_text(in_root(root, path))
        if text is None:
            continue
        for line in parse_known_hosts(text):
            yield user.uid, line, path


# --- ssh_config ---------------------------------------------------------------------

def _opens_block(line: str) -> bool:
    for keyword in ("host", "match"):
        if line.startswith(keyword) and len(line) > len(keyword) and line[len(keyword)] in " \t=":
            return True
    return False


def parse_ssh_config(text: str) -> Iterator[tuple[str, str]]:
    """(block, option) pairs, lower-cased as osquery reports them.

    The block is the ``Host``/``Match`` line an option follows ("" before the
    first one), so ``WHERE block = 'host *'`` selects the defaults section.
    """
    block = ""
    for raw in _lines(text):
        line = raw.strip().lower()
        if not line or line.startswith("#"):
            continue
        if _opens_block(line):
            block = line
        else:
            yield block, line


def gen_ssh_configs(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    for user in users_for_context(ctx, root):
        path = posixpath.join(user.home, USER_CONFIG_FILE)
        text = _read_text(in_root(root, path))
        if text is not None:
            for block, option in parse_ssh_config(text):
                yield user.uid, block, option, path
    # The system-wide file belongs to root and is read whoever the query is about.
    text = _read_text(in_root(root, SYSTEM_CONFIG_FILE))
    if text is not None:
        for block, option in parse_ssh_config(text):
            yield 0, block, option, SYSTEM_CONFIG_FILE


# --- private keys -------------------------------------------------------------------

def _candidate_files(view: str, directory: str) -> Iterable[str]:
    try:
        names = sorted(os.listdir(in_root(view, directory)))
    except OSError as exc:
        log.debug("cannot list %s: %s", directory, exc)
        return []
    return [posixpath.join(directory, n) for n in names]


def _read_key_file(real: str) -> bytes | None:
    try:
        st = os.stat(real)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_KEY_FILE:
            return None
        with open(real, "rb") as f:
            return f.read(MAX_KEY_FILE)
    except OSError as exc:
        log.debug("cannot read %s: %s", real, exc)
        return None


def gen_user_ssh_keys(ctx: QueryContext, root: str = "/") -> Iterator[Row]:
    wanted = {str(p) for p in ctx.equals("path")} or None
    for view, ns_pid in namespace_roots(ctx, root):
        for user in users_for_context(ctx, view):
            for path in _candidate_files(view, posixpath.join(user.home, SSH_DIR)):
                if wanted is not None and path not in wanted:
                    continue
                content = _read_key_file(in_root(view, path))
                if content is None or b"PRIVATE KEY" not in content:
                    continue
                info = inspect_private_key(content)
                if info is None:
                    continue
                yield (
                    user.uid, path, int(info.encrypted), info.key_type, info.group, info.bits,
                    info.security_bits, ns_pid,
                )
