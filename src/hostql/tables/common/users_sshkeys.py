"""What a private key file is: format, passphrase protection, algorithm and size.

Handles the formats ssh-keygen and OpenSSL write: OpenSSH's own
``openssh-key-v1`` container (whose public half is stored in clear, so the
algorithm is known even when the key is encrypted), traditional PEM (PKCS#1
RSA, DSA, SEC1 EC, optionally with ``Proc-Type: 4,ENCRYPTED``), PKCS#8 and
encrypted PKCS#8.  For PEM keys, sizes and security bits follow OpenSSL's
``EVP_PKEY_bits``/``EVP_PKEY_security_bits`` (osquery asks OpenSSL); for
OpenSSH keys they follow ``ssh-keygen -l`` (an Ed25519 key is 256 bits there,
253 in OpenSSL's count), as osquery's own OpenSSH reader does.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import NamedTuple


class KeyInfo(NamedTuple):
    encrypted: bool
    key_type: str  # rsa, dsa, dh, ec, ed25519, ed448, x25519, x448 or ""
    group: str  # curve name for EC keys, else ""
    bits: int  # -1 when unknown
    security_bits: int  # -1 when unknown


UNKNOWN = ("", "", -1, -1)

_PEM = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)

# Named curves: DER OID -> (OpenSSL name, order bits); OpenSSH name -> OID.
_CURVES = {
    "1.2.840.10045.3.1.7": ("prime256v1", 256),
    "1.3.132.0.34": ("secp384r1", 384),
    "1.3.132.0.35": ("secp521r1", 521),
    "1.3.132.0.10": ("secp256k1", 256),
    "1.3.132.0.33": ("secp224r1", 224),
    "1.2.840.10045.3.1.1": ("prime192v1", 192),
}
_SSH_CURVES = {"nistp256": "1.2.840.10045.3.1.7", "nistp384": "1.3.132.0.34", "nistp521": "1.3.132.0.35"}

# Edwards/Montgomery keys have fixed sizes: (type, OpenSSL bits, security bits).
_FIXED = {
    "1.3.101.112": ("ed25519", 253, 128),
    "1.3.101.113": ("ed448", 456, 224),
    "1.3.101.110": ("x25519", 253, 128),
    "1.3.101.111": ("x448", 448, 224),
}

_OID_RSA = "1.2.840.113549.1.1.1"
_OID_RSA_PSS = "1.2.840.113549.1.1.10"
_OID_DSA = "1.2.840.10040.4.1"
_OID_EC = "1.2.840.10045.2.1"
_OID_DH = "1.2.840.113549.1.3.1"
_OID_DHX = "1.2.840.10046.2.1"


def ffc_security_bits(l_bits: int, n_bits: int = -1) -> int:
    """Strength of an RSA/DSA/DH key of modulus L (and subgroup N) bits, per SP 800-57."""
    if l_bits >= 15360:
        sec = 256
    elif l_bits >= 7680:
        sec = 192
    elif l_bits >= 3072:
        sec = 128
    elif l_bits >= 2048:
        sec = 112
    elif l_bits >= 1024:
        sec = 80
    else:
        return 0
    if n_bits == -1:
        return sec
    if n_bits // 2 < 80:
        return 0
    return min(sec, n_bits // 2)


def ec_security_bits(order_bits: int) -> int:
    for limit, sec in ((512, 256), (384, 192), (256, 128), (224, 112), (160, 80)):
        if order_bits >= limit:
            return sec
    return order_bits // 2


# --- a minimal DER reader: enough for key containers -------------------------

class _Der(NamedTuple):
    tag: int
    start: int
    end: int


def _der_items(data: bytes, start: int = 0, end: int | None = None) -> list[_Der]:
    end = len(data) if end is None else end
    items = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise ValueError("truncated DER")
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or pos + count > end:
                raise ValueError("bad DER length")
            length = int.from_bytes(data[pos:pos + count], "big")
            pos += count
        if pos + length > end:
            raise ValueError("DER item overruns its container")
        items.append(_Der(tag, pos, pos + length))
        pos += length
    return items


def _der_sequence(data: bytes, item: _Der | None = None) -> list[_Der]:
    outer = item or _der_items(data)[0]
    if outer.tag != 0x30:
        raise ValueError("expected a DER SEQUENCE")
    return _der_items(data, outer.start, outer.end)


def _der_int_bits(data: bytes, item: _Der) -> int:
    if item.tag != 0x02:
        raise ValueError("expected a DER INTEGER")
    return int.from_bytes(data[item.start:item.end], "big").bit_length()


def _der_oid(data: bytes, item: _Der) -> str:
    if item.tag != 0x06 or item.end == item.start:
        raise ValueError("expected a DER OBJECT IDENTIFIER")
    raw = data[item.start:item.end]
    arcs = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _curve(oid: str) -> tuple[str, str, int, int]:
    name, bits = _CURVES.get(oid, ("", -1))
    return "ec", name, bits, ec_security_bits(bits) if bits > 0 else -1


def _fixed(oid: str) -> tuple[str, str, int, int]:
    key_type, bits, sec = _FIXED[oid]
    return key_type, "", bits, sec


def _rsa_pkcs1(der: bytes) -> tuple[str, str, int, int]:
    fields = _der_sequence(der)
    bits = _der_int_bits(der, fields[1])
    return "rsa", "", bits, ffc_security_bits(bits)


def _dsa_params(der: bytes, p: _Der, q: _Der) -> tuple[str, str, int, int]:
    l_bits, n_bits = _der_int_bits(der, p), _der_int_bits(der, q)
    return "dsa", "", l_bits, ffc_security_bits(l_bits, n_bits)


def _ec_sec1(der: bytes) -> tuple[str, str, int, int]:
    for item in _der_sequence(der)[2:]:
        if item.tag == 0xA0:  # [0] parameters: the named curve
            return _curve(_der_oid(der, _der_items(der, item.start, item.end)[0]))
    return "ec", "", -1, -1


def _pkcs8(der: bytes) -> tuple[str, str, int, int]:
    fields = _der_sequence(der)
    algorithm = _der_sequence(der, fields[1])
    oid = _der_oid(der, algorithm[0])
    private = fields[2]
    inner = der[private.start:private.end]
    if oid in (_OID_RSA, _OID_RSA_PSS):
        return _rsa_pkcs1(inner)
    if oid == _OID_DSA:
        params = _der_sequence(der, algorithm[1])
        return _dsa_params(der, params[0], params[1])
    if oid == _OID_EC:
        return _curve(_der_oid(der, algorithm[1]))
    if oid in (_OID_DH, _OID_DHX):
        params = _der_sequence(der, algorithm[1])
        l_bits = _der_int_bits(der, params[0])
        n_bits = _der_int_bits(der, params[2]) if oid == _OID_DHX and len(params) > 2 else -1
        return "dh", "", l_bits, ffc_security_bits(l_bits, n_bits)
    if oid in _FIXED:
        return _fixed(oid)
    return UNKNOWN


def _pem_body(body: bytes) -> tuple[dict[str, str], bytes]:
    """RFC 1421 headers (Proc-Type, DEK-Info) and the decoded payload."""
    headers: dict[str, str] = {}
    lines = body.replace(b"\r", b"").split(b"\n")
    payload = []
    for line in lines:
        text = line.decode("ascii", errors="replace")
        if ":" in text:
            key, _, value = text.partition(":")
            headers[key.strip().lower()] = value.strip()
        else:
            payload.append(line.strip())
    return headers, base64.b64decode(b"".join(payload), validate=False)


# --- OpenSSH's own container ------------------------------------------------

_OPENSSH_MAGIC = b"openssh-key-v1\0"


class _SshReader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated ssh string")
        size = int.from_bytes(self.data[self.pos:self.pos + 4], "big")
        start = self.pos + 4
        if start + size > len(self.data):
            raise ValueError("ssh string overruns the blob")
        self.pos = start + size
        return self.data[start:start + size]

    def uint32(self) -> int:
        return int.from_bytes(self.string_raw(4), "big")

    def string_raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError("truncated ssh blob")
        self.pos += size
        return self.data[self.pos - size:self.pos]


def _ssh_public(blob: bytes) -> tuple[str, str, int, int]:
    reader = _SshReader(blob)
    name = reader.string().decode("ascii", errors="replace")
    if name == "ssh-rsa":
        reader.string()  # public exponent
        bits = int.from_bytes(reader.string(), "big").bit_length()
        return "rsa", "", bits, ffc_security_bits(bits)
    if name == "ssh-dss":
        l_bits = int.from_bytes(reader.string(), "big").bit_length()
        n_bits = int.from_bytes(reader.string(), "big").bit_length()
        return "dsa", "", l_bits, ffc_security_bits(l_bits, n_bits)
    if name.startswith(("ecdsa-sha2-", "sk-ecdsa-sha2-")):
        curve = reader.string().decode("ascii", errors="replace")
        return _curve(_SSH_CURVES.get(curve, ""))
    if name in ("ssh-ed25519", "sk-ssh-ed25519@openssh.com"):
        return "ed25519", "", 256, 128
    if name == "ssh-ed448":
        return _fixed("1.3.101.113")
    return UNKNOWN


def _openssh(payload: bytes) -> KeyInfo:
    if not payload.startswith(_OPENSSH_MAGIC):
        return KeyInfo(False, *UNKNOWN)
    reader = _SshReader(payload, len(_OPENSSH_MAGIC))
    try:
        encrypted = reader.string() != b"none"  # cipher name
    except ValueError:
        return KeyInfo(False, *UNKNOWN)
    try:
        reader.string()  # kdf name
        reader.string()  # kdf options
        if reader.uint32() < 1:
            return KeyInfo(encrypted, *UNKNOWN)
        # The first public key is stored in clear even when the private part is not.
        return KeyInfo(encrypted, *_ssh_public(reader.string()))
    except ValueError:
        return KeyInfo(encrypted, *UNKNOWN)


# --- entry point --------------------------------------------------------------

_TRADITIONAL = {"RSA PRIVATE KEY": ("rsa", _rsa_pkcs1), "EC PRIVATE KEY": ("ec", _ec_sec1)}


def _traditional_dsa(der: bytes) -> tuple[str, str, int, int]:
    fields = _der_sequence(der)
    return _dsa_params(der, fields[1], fields[2])


def inspect_private_key(content: bytes) -> KeyInfo | None:
    """Facts about the private key in ``content``; None when it holds none.

    A PEM block that cannot be decoded is not reported (OpenSSL would refuse
    it too), except OpenSSH keys, recognised by their header alone.
    """
    match = _PEM.search(content)
    if match is None:
        return None
    label = match.group(1).decode("ascii")
    try:
        headers, payload = _pem_body(match.group(2))
    except (binascii.Error, ValueError):
        return KeyInfo(False, *UNKNOWN) if label == "OPENSSH PRIVATE KEY" else None
    if label == "OPENSSH PRIVATE KEY":
        return _openssh(payload)
    if label == "ENCRYPTED PRIVATE KEY":
        return KeyInfo(True, *UNKNOWN)
    encrypted = "ENCRYPTED" in headers.get("proc-type", "").upper()
    parsers = {**_TRADITIONAL, "DSA PRIVATE KEY": ("dsa", _traditional_dsa), "PRIVATE KEY": ("", _pkcs8)}
    if label not in parsers:
        return None
    family, parse = parsers[label]
    if encrypted:
        # The body is ciphertext; only the label says what kind of key it is.
        return KeyInfo(True, family, "", -1, -1)
    try:
        return KeyInfo(False, *parse(payload))
    except (ValueError, IndexError):
        return None
