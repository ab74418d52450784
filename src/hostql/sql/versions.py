"""Version ordering for the VERSION* collations and ``version_compare``.

Each comparison returns a negative number, 0 or a positive number.

* ``VERSION``: generic; runs of digits compare numerically, runs of letters
  alphabetically, a number beats letters, other characters only separate runs,
  ``~`` sorts before anything (even the end), and when one version runs out
  the longer one is newer.  This is rpm's segment comparison without EVR.
* ``VERSION_DPKG``: Debian policy: ``[epoch:]upstream[-revision]``, epochs
  numerically, then upstream and revision by dpkg's ``verrevcmp`` (``~`` before
  the end, the end before letters, letters before other characters).
* ``VERSION_RHEL``: rpm's ``[epoch:]version[-release]`` with ``rpmvercmp``
  (``~`` sorts first, ``^`` after the end but before more content); releases
  are compared only when both sides have one.
* ``VERSION_ARCH``: pacman's ``vercmp``: like rpm, but a trailing alphabetic
  part is a pre-release (``1.0a`` < ``1.0``) and separator lengths matter.
"""

from __future__ import annotations

from collections.abc import Callable

_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _DIGITS | _LETTERS


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


# --- dpkg --------------------------------------------------------------------

def _dpkg_order(ch: str) -> int:
    if ch in _DIGITS:
        return 0
    if ch in _LETTERS:
        return ord(ch)
    if ch == "~":
        return -1
    return ord(ch) + 256


def dpkg_verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of one upstream version or revision string."""
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        # Non-digit prefix, character by character with dpkg's weights.
        while (i < la and a[i] not in _DIGITS) or (j < lb and b[j] not in _DIGITS):
            ac = _dpkg_order(a[i]) if i < la else 0
            bc = _dpkg_order(b[j]) if j < lb else 0
            if ac != bc:
                return _sign(ac - bc)
            i += 1
            j += 1
        # Digit run, numerically (leading zeros do not count).
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        first_diff = 0
        while i < la and a[i] in _DIGITS and j < lb and b[j] in _DIGITS:
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and a[i] in _DIGITS:
            return 1
        if j < lb and b[j] in _DIGITS:
            return -1
        if first_diff:
            return _sign(first_diff)
    return 0


def _split_evr(version: str) -> tuple[int, str, str | None]:
    """``[epoch:]version[-release]``; a non-numeric epoch is kept in the version."""
    epoch = 0
    head, sep, rest = version.partition(":")
    if sep and head.isascii() and head.isdigit():
        epoch = int(head)
        version = rest
    body, dash, release = version.rpartition("-")
    if dash:
        return epoch, body, release
    return epoch, version, None


def compare_dpkg(a: str, b: str) -> int:
    ea, va, ra = _split_evr(a)
    eb, vb, rb = _split_evr(b)
    if ea != eb:
        return _sign(ea - eb)
    return dpkg_verrevcmp(va, vb) or dpkg_verrevcmp(ra or "", rb or "")


# --- rpm ---------------------------------------------------------------------

def _segment(s: str, i: int, chars: frozenset[str]) -> int:
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def _compare_segments(s1: str, s2: str, numeric: bool) -> int:
    if numeric:
        s1 = s1.lstrip("0")
        s2 = s2.lstrip("0")
        if len(s1) != len(s2):
            return _sign(len(s1) - len(s2))
    return (s1 > s2) - (s1 < s2)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp for one version or release string."""
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        while i < la and a[i] not in _ALNUM and a[i] not in "~^":
            i += 1
        while j < lb and b[j] not in _ALNUM and b[j] not in "~^":
            j += 1
        ca = a[i] if i < la else ""
        cb = b[j] if j < lb else ""
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i += 1
            j += 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ca and cb):
            break
        numeric = ca in _DIGITS
        chars = _DIGITS if numeric else _LETTERS
        ei, ej = _segment(a, i, chars), _segment(b, j, chars)
        if ej == j:
            # Segments of different kinds: a number is newer than letters.
            return 1 if numeric else -1
        diff = _compare_segments(a[i:ei], b[j:ej], numeric)
        if diff:
            return diff
        i, j = ei, ej
    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


def compare_rhel(a: str, b: str) -> int:
    ea, va, ra = _split_evr(a)
    eb, vb, rb = _split_evr(b)
    if ea != eb:
        return _sign(ea - eb)
    diff = rpmvercmp(va, vb)
    if diff or not ra or not rb:
        return diff
    return rpmvercmp(ra, rb)


# --- pacman ------------------------------------------------------------------

def pacman_rpmvercmp(a: str, b: str) -> int:
    """pacman's variant of rpmvercmp (libalpm/version.c)."""
    if a == b:
        return 0
    i = j = 0
    pi = pj = 0
    la, lb = len(a), len(b)
    while i < la and j < lb:
        while i < la and a[i] not in _ALNUM:
            i += 1
        while j < lb and b[j] not in _ALNUM:
            j += 1
        if i >= la or j >= lb:
            break
        # Different separator lengths decide on their own.
        if (i - pi) != (j - pj):
            return -1 if (i - pi) < (j - pj) else 1
        numeric = a[i] in _DIGITS
        chars = _DIGITS if numeric else _LETTERS
        ei, ej = _segment(a, i, chars), _segment(b, j, chars)
        if ej == j:
            return 1 if numeric else -1
        diff = _compare_segments(a[i:ei], b[j:ej], numeric)
        if diff:
            return diff
        i = pi = ei
        j = pj = ej
    rest_a, rest_b = a[i:], b[j:]
    if not rest_a and not rest_b:
        return 0
    # A leftover alphabetic part is a pre-release and loses to the end.
    if (not rest_a and rest_b[0] not in _LETTERS) or (rest_a and rest_a[0] in _LETTERS):
        return -1
    return 1


def _split_arch(version: str) -> tuple[str, str, str | None]:
    epoch = "0"
    head, sep, rest = version.partition(":")
    if sep and head.isascii() and head.isdigit():
        epoch, version = head, rest
    elif sep and head == "":
        version = rest
    body, dash, release = version.rpartition("-")
    if dash:
        return epoch, body, release
    return epoch, version, None


def compare_arch(a: str, b: str) -> int:
    if a == b:
        return 0
    ea, va, ra = _split_arch(a)
    eb, vb, rb = _split_arch(b)
    diff = pacman_rpmvercmp(ea, eb) or pacman_rpmvercmp(va, vb)
    if diff or ra is None or rb is None:
        return diff
    return pacman_rpmvercmp(ra, rb)


# --- generic -----------------------------------------------------------------

def compare_generic(a: str, b: str) -> int:
    return rpmvercmp(a, b)


COLLATIONS: dict[str, Callable[[str, str], int]] = {
    "VERSION": compare_generic,
    "VERSION_ARCH": compare_arch,
    "VERSION_DPKG": compare_dpkg,
    "VERSION_RHEL": compare_rhel,
}

# version_compare's optional third argument names one of these.
FLAVOURS: dict[str, Callable[[str, str], int]] = {
    "": compare_generic,
    "ARCH": compare_arch,
    "DPKG": compare_dpkg,
    "RHEL": compare_rhel,
}
