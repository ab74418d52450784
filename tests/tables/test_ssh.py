"""authorized_keys, known_hosts, user_ssh_keys, ssh_configs (and private key inspection)."""

from __future__ import annotations

import base64
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hostql.sql.context import Constraint, Op, QueryContext
from hostql.tables.common.users_sshkeys import KeyInfo, inspect_private_key
from hostql.tables.linux import ssh
from hostql.tables.linux.ssh import AuthorizedKey, parse_authorized_key
from hostql.tables.registry import get_spec


def ctx(table: str, **equals: Any) -> QueryContext:
    constraints: dict[str, list[Constraint]] = {}
    for column, value in equals.items():
        values = value if isinstance(value, (list, set, tuple)) else [value]
        constraints[column] = [Constraint(Op.EQUALS, v) for v in values]
    return QueryContext.for_table(get_spec(table), constraints)


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


# --- hand-built key containers (ground truth: the numbers we put in) -----------------------

def der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def der_int(value: int) -> bytes:
    return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return der(0x06, bytes(body))


def seq(*items: bytes) -> bytes:
    return der(0x30, b"".join(items))


def pem(label: str, payload: bytes, headers: str = "") -> bytes:
    b64 = base64.b64encode(payload).decode()
    lines = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{headers}{lines}\n-----END {label}-----\n".encode()


def sshstr(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def mpint(value: int) -> bytes:
    return sshstr(value.to_bytes(value.bit_length() // 8 + 1, "big"))


def openssh(cipher: bytes, public_blob: bytes) -> bytes:
    kdf = b"none" if cipher == b"none" else b"bcrypt"
    body = (
        b"openssh-key-v1\0" + sshstr(cipher) + sshstr(kdf) + sshstr(b"") + (1).to_bytes(4, "big")
        + sshstr(public_blob) + sshstr(b"\0" * 64)
    )
    return pem("OPENSSH PRIVATE KEY", body)


RSA_N_3072 = (1 << 3071) | 0x1234567
RSA_N_2048 = (1 << 2047) | 0xABCDEF
P256 = "1.2.840.10045.3.1.7"

HAND_KEYS: dict[str, tuple[bytes, KeyInfo]] = {
    "id_ed25519": (
        openssh(b"none", sshstr(b"ssh-ed25519") + sshstr(b"\x11" * 32)),
        KeyInfo(False, "ed25519", "", 256, 128),
    ),
    "id_rsa_locked": (
        openssh(b"aes256-ctr", sshstr(b"ssh-rsa") + mpint(65537) + mpint(RSA_N_3072)),
        KeyInfo(True, "rsa", "", 3072, 128),
    ),
    "id_ecdsa": (
        openssh(b"none", sshstr(b"ecdsa-sha2-nistp384") + sshstr(b"nistp384") + sshstr(b"\x04" * 97)),
        KeyInfo(False, "ec", "secp384r1", 384, 192),
    ),
    "pkcs1.pem": (
        pem("RSA PRIVATE KEY", seq(der_int(0), der_int(RSA_N_2048), der_int(65537), der_int(3))),
        KeyInfo(False, "rsa", "", 2048, 112),
    ),
    "sec1.pem": (
        pem("EC PRIVATE KEY", seq(der_int(1), der(0x04, b"\x01" * 32), der(0xA0, der_oid(P256)))),
        KeyInfo(False, "ec", "prime256v1", 256, 128),
    ),
    "pkcs8_ec.pem": (
        pem("PRIVATE KEY", seq(
            der_int(0), seq(der_oid("1.2.840.10045.2.1"), der_oid(P256)),
            der(0x04, seq(der_int(1), der(0x04, b"\x02" * 32))),
        )),
        KeyInfo(False, "ec", "prime256v1", 256, 128),
    ),
    "pkcs8_ed25519.pem": (
        pem("PRIVATE KEY", seq(der_int(0), seq(der_oid("1.3.101.112")), der(0x04, der(0x04, b"\x03" * 32)))),
        KeyInfo(False, "ed25519", "", 253, 128),
    ),
    "legacy_locked.pem": (
        pem("RSA PRIVATE KEY", b"\x99" * 64,
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n"),
        KeyInfo(True, "rsa", "", -1, -1),
    ),
    "pkcs8_locked.pem": (pem("ENCRYPTED PRIVATE KEY", b"\x30\x03\x02\x01\x00"), KeyInfo(True, "", "", -1, -1)),
}


@pytest.mark.parametrize("name", sorted(HAND_KEYS))
def test_inspect_hand_built_keys(name: str) -> None:
    content, expected = HAND_KEYS[name]
    assert inspect_private_key(content) == expected


def test_inspect_rejects_non_keys() -> None:
    assert inspect_private_key(b"ssh-ed25519 AAAAC3Nz user@host\n") is None
    assert inspect_private_key(pem("CERTIFICATE", b"\x30\x00")) is None
    # Claims to be a PKCS#1 key but is not DER: OpenSSL would refuse it, so do we.
    assert inspect_private_key(pem("RSA PRIVATE KEY", b"garbage")) is None


# --- fake tree with two users -------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"

AUTHORIZED = """\
# keys for alice
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@laptop
command="echo hi there",no-pty,from="10.0.0.1" ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB backup key

ecdsa-sha2-nistp256 AAAAE2VjZHNh
not a key line
zos-key-ring-label="KeyRing01 label"
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path / "etc/passwd", PASSWD)
    write(tmp_path / "home/alice/.ssh/authorized_keys", AUTHORIZED)
    write(tmp_path / "home/alice/.ssh/authorized_keys2", "sk-ssh-ed25519@openssh.com AAAAGnNr second\n")
    write(tmp_path / "home/alice/.ssh/known_hosts",
          "github.com ssh-ed25519 AAAAC3Nz\n# comment\n\n|1|abc=|def= ecdsa-sha2-nistp256 AAAAE2\n"
          "@cert-authority *.corp ssh-rsa AAAAB3\n")
    write(tmp_path / "home/alice/.ssh/config",
          "# personal\nForwardAgent no\n\nHost github.com\n  User Git\n  IdentityFile ~/.ssh/id_ed25519\n"
          "Match host *.corp exec \"true\"\n\tProxyJump bastion\nHost=old\n  Port 2222\n")
    write(tmp_path / "etc/ssh/ssh_config", "Host *\n    SendEnv LANG LC_*\n")
    write(tmp_path / "root/.ssh/authorized_keys", "ssh-ed25519 AAAAroot root@box\n")
    for name, (content, _info) in HAND_KEYS.items():
        write(tmp_path / "home/alice/.ssh" / name, content)
    write(tmp_path / "home/alice/.ssh/id_ed25519.pub", "ssh-ed25519 AAAAC3Nz alice@laptop\n")
    (tmp_path / "home/alice/.ssh/subdir").mkdir()
    return tmp_path


def test_parse_authorized_key_shapes() -> None:
    assert parse_authorized_key("ssh-rsa AAAAB3 a comment with spaces") == AuthorizedKey(
        "ssh-rsa", "AAAAB3", None, "a comment with spaces"
    )
    assert parse_authorized_key('restrict,command="a b" ssh-ed25519 AAAAC3') == AuthorizedKey(
        "ssh-ed25519", "AAAAC3", 'restrict,command="a b"', None
    )
    assert parse_authorized_key("ssh-rsa-cert-v01@openssh.com AAAAHHNz cert") == AuthorizedKey(
        "ssh-rsa-cert-v01@openssh.com", "AAAAHHNz", None, "cert"
    )
    assert parse_authorized_key("# ssh-rsa AAAA") is None
    assert parse_authorized_key("ssh-rsa") is None
    assert parse_authorized_key("1024 35 12345 protocol-one-key") is None


def test_authorized_keys_for_uid(tree: Path) -> None:
    rows = list(ssh.gen_authorized_keys(ctx("authorized_keys", uid=1000), root=str(tree)))
    f1, f2 = "/home/alice/.ssh/authorized_keys", "/home/alice/.ssh/authorized_keys2"
    assert rows == [
        (1000, "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIA", None, "alice@laptop", f1, 0),
        (1000, "ssh-rsa", "AAAAB3NzaC1yc2EAAAADAQAB", 'command="echo hi there",no-pty,from="10.0.0.1"',
         "backup key", f1, 0),
        (1000, "ecdsa-sha2-nistp256", "AAAAE2VjZHNh", None, None, f1, 0),
        (1000, None, None, 'zos-key-ring-label="KeyRing01 label"', None, f1, 0),
        (1000, "sk-ssh-ed25519@openssh.com", "AAAAGnNr", None, "second", f2, 0),
    ]


def test_authorized_keys_without_uid_is_current_user(tree: Path) -> None:
    rows = list(ssh.gen_authorized_keys(ctx("authorized_keys"), root=str(tree)))
    if os.getuid() == 0:
        assert rows == [(0, "ssh-ed25519", "AAAAroot", None, "root@box", "/root/.ssh/authorized_keys", 0)]
    else:
        assert all(r[0] == os.getuid() for r in rows)


def test_known_hosts(tree: Path) -> None:
    rows = list(ssh.gen_known_hosts(ctx("known_hosts", uid=[1000, 0]), root=str(tree)))
    path = "/home/alice/.ssh/known_hosts"
    assert rows == [
        (1000, "github.com ssh-ed25519 AAAAC3Nz", path),
        (1000, "|1|abc=|def= ecdsa-sha2-nistp256 AAAAE2", path),
        (1000, "@cert-authority *.corp ssh-rsa AAAAB3", path),
    ]


def test_ssh_configs(tree: Path) -> None:
    rows = list(ssh.gen_ssh_configs(ctx("ssh_configs", uid=1000), root=str(tree)))
    user = "/home/alice/.ssh/config"
    assert rows == [
        (1000, "", "forwardagent no", user),
        (1000, "host github.com", "user git", user),
        (1000, "host github.com", "identityfile ~/.ssh/id_ed25519", user),
        (1000, 'match host *.corp exec "true"', "proxyjump bastion", user),
        (1000, "host=old", "port 2222", user),
        (0, "host *", "sendenv lang lc_*", "/etc/ssh/ssh_config"),
    ]


def test_user_ssh_keys_fake_tree(tree: Path) -> None:
    rows = list(ssh.gen_user_ssh_keys(ctx("user_ssh_keys", uid=1000), root=str(tree)))
    found = {Path(r[1]).name: KeyInfo(bool(r[2]), r[3], r[4], r[5], r[6]) for r in rows}
    assert found == {name: info for name, (_c, info) in HAND_KEYS.items()}
    assert all(r[0] == 1000 and r[1].startswith("/home/alice/.ssh/") and r[7] == 0 for r in rows)
    one = list(ssh.gen_user_ssh_keys(
        ctx("user_ssh_keys", uid=1000, path="/home/alice/.ssh/id_ed25519"), root=str(tree)
    ))
    assert [r[1] for r in one] == ["/home/alice/.ssh/id_ed25519"]


# --- keys made by the real tools ----------------------------------------------------------

def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


def test_user_ssh_keys_real_keys(tmp_path: Path) -> None:
    # `make test` installs both tools (Makefile SYSTEM_PROGRAMS).
    assert shutil.which("ssh-keygen") and shutil.which("openssl"), "ssh-keygen and openssl are needed: run `make test`"
    write(tmp_path / "etc/passwd", PASSWD)
    d = tmp_path / "home/alice/.ssh"
    d.mkdir(parents=True)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", str(d / "ed"))
    _run("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "secret", "-f", str(d / "rsa_locked"))
    _run("ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-m", "PEM", "-N", "", "-f", str(d / "ec_pem"))
    _run("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "passphrase",
         "-f", str(d / "rsa_pem_locked"))
    _run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", str(d / "p384"))
    p384_text = _run("openssl", "pkey", "-in", str(d / "p384"), "-noout", "-text")
    p384_bits = int(re.search(r"\((\d+) bit", p384_text).group(1))  # type: ignore[union-attr]

    def keygen_bits(name: str) -> int:
        return int(_run("ssh-keygen", "-l", "-f", str(d / f"{name}.pub")).split()[0])

    rows = list(ssh.gen_user_ssh_keys(ctx("user_ssh_keys", uid=1000), root=str(tmp_path)))
    found = {Path(r[1]).name: r[2:7] for r in rows}
    assert found == {
        "ed": (0, "ed25519", "", keygen_bits("ed"), 128),
        "rsa_locked": (1, "rsa", "", keygen_bits("rsa_locked"), 112),
        "ec_pem": (0, "ec", "secp521r1", keygen_bits("ec_pem"), 256),
        "rsa_pem_locked": (1, "rsa", "", -1, -1),
        "p384": (0, "ec", "secp384r1", p384_bits, 192),
    }


# --- live host, through SQL ----------------------------------------------------------------

def test_ssh_configs_live(db: Any) -> None:
    expected = 0
    try:
        for line in Path("/etc/ssh/ssh_config").read_text().splitlines():
            text = line.strip().lower()
            if text and not text.startswith("#") and not re.match(r"(host|match)[\s=]", text):
                expected += 1
    except OSError:
        pass
    rows = db.execute("SELECT uid, option FROM ssh_configs WHERE ssh_config_file = '/etc/ssh/ssh_config'").rows
    assert len(rows) == expected
    assert all(uid == 0 and option == option.lower() for uid, option in rows)


def test_root_ssh_material_live(db: Any) -> None:
    home = Path(pwd.getpwuid(0).pw_dir)
    keys = db.execute("SELECT key_file FROM authorized_keys WHERE uid = 0").rows
    hosts = db.execute("SELECT key_file FROM known_hosts WHERE uid = 0").rows
    private = db.execute("SELECT path FROM user_ssh_keys WHERE uid = 0").rows
    if not (home / ".ssh").exists():
        assert keys == hosts == private == []
    else:
        assert all(r[0].startswith(str(home / ".ssh")) for r in keys + hosts + private)


def test_user_data_join(db: Any) -> None:
    rows = db.execute("SELECT u.username, s.option FROM users u JOIN ssh_configs s USING (uid) WHERE u.uid = 0").rows
    system = db.execute("SELECT count(*) FROM ssh_configs WHERE uid = 0").rows[0][0]
    assert len(rows) == system


def test_namespace_view_of_own_process(db: Any) -> None:
    pid = os.getpid()
    plain = db.execute("SELECT path, encrypted FROM user_ssh_keys WHERE uid = 0").rows
    viewed = db.execute(
        "SELECT path, encrypted, pid_with_namespace FROM user_ssh_keys WHERE uid = 0 AND pid_with_namespace = ?",
        (pid,),
    ).rows
    assert viewed == [(*r, pid) for r in plain]
    # A pid that does not exist has no filesystem view: no rows, no error.
    assert db.execute("SELECT * FROM authorized_keys WHERE uid = 0 AND pid_with_namespace = -5").rows == []
