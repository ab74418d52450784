"""Table specs: accounts, groups, logins and per-user access material (ssh, history)."""

from __future__ import annotations

from hostql.tables.spec import (
    ALL_PLATFORMS,
    BIGINT,
    INTEGER,
    LINUX_ONLY,
    POSIX_PLATFORMS,
    TEXT,
    Column,
    TableSpec,
    table,
)

_LINUX = frozenset({"linux"})
_DARWIN = frozenset({"darwin"})
_WINDOWS = frozenset({"windows"})

_L = "hostql.tables.linux.users"
_S = "hostql.tables.linux.ssh"
_P = "hostql.tables.portable.users"


def _pid_ns() -> Column:
    # Constraining this hidden column reads the table from that process's mount namespace.
    return Column(
        "pid_with_namespace",
        INTEGER,
        "Read the data as seen from this process's root (its mount namespace); 0 when not used",
        additional=True,
        hidden=True,
        platforms=_LINUX,
    )


TABLES: list[TableSpec] = [
    table(
        "users",
        "Accounts defined on the host: numeric ids, login name, home directory and login shell.",
        [
            Column("uid", BIGINT, "Numeric user id, unsigned", index=True),
            Column("gid", BIGINT, "Numeric id of the account's primary group, unsigned"),
            Column("uid_signed", BIGINT, "The user id read as a signed 32-bit number"),
            Column("gid_signed", BIGINT, "The primary group id read as a signed 32-bit number"),
            Column("username", TEXT, "Login name of the account", additional=True),
            Column("description", TEXT, "Free-form account comment (the GECOS field on Unix)"),
            Column("directory", TEXT, "Home directory path"),
            Column("shell", TEXT, "Program started when the user logs in"),
            Column(
                "uuid",
                TEXT,
                "Globally unique account identifier where the OS has one (macOS UUID, Windows SID); "
                "empty on Linux",
                index=True,
                collate="NOCASE",
            ),
            Column("type", TEXT, "Kind of account: local, roaming/domain or system profile", platforms=_WINDOWS),
            Column("is_hidden", INTEGER, "1 when the account is flagged hidden in the directory service",
                   platforms=_DARWIN),
            _pid_ns(),
            Column(
                "include_remote",
                INTEGER,
                "Set to 1 to also list accounts served by NSS (LDAP, SSSD, ...); unfiltered this can be huge",
                additional=True,
                hidden=True,
                platforms=_LINUX,
            ),
        ],
        linux=f"{_L}:gen_users",
        portable=f"{_P}:gen_users",
        platforms=ALL_PLATFORMS,
        examples=("select * from users where uid = 0",),
    ),
    table(
        "groups",
        "Groups defined on the host with their numeric ids.",
        [
            Column("gid", BIGINT, "Numeric group id, unsigned", index=True),
            Column("gid_signed", BIGINT, "The group id read as a signed 32-bit number"),
            Column("groupname", TEXT, "Name of the group"),
            Column("group_sid", TEXT, "Security identifier of the group", index=True, platforms=_WINDOWS),
            Column("comment", TEXT, "Administrator's remark on the group", platforms=_WINDOWS),
            Column("is_hidden", INTEGER, "1 when the group is flagged hidden in the directory service",
                   platforms=_DARWIN),
            _pid_ns(),
        ],
        linux=f"{_L}:gen_groups",
        portable=f"{_P}:gen_groups",
        platforms=ALL_PLATFORMS,
    ),
    table(
        "user_groups",
        "Which groups each account belongs to, its primary group included.",
        [
            Column("uid", BIGINT, "Numeric id of the member account", index=True, optimized=True),
            Column("gid", BIGINT, "Numeric id of a group the account is in", index=True),
        ],
        linux=f"{_L}:gen_user_groups",
        portable=f"{_P}:gen_user_groups",
        platforms=ALL_PLATFORMS,
    ),
    table(
        "logged_in_users",
        "Current login sessions and other records of the utmp database.",
        [
            Column("type", TEXT, "Record kind, e.g. user, login, init, dead, boot_time, runlevel"),
            Column("user", TEXT, "Account name recorded for the session"),
            Column("tty", TEXT, "Terminal line of the session (e.g. pts/0)"),
            Column("host", TEXT, "Remote host the session came from, if any"),
            Column("time", BIGINT, "When the record was written, unix seconds"),
            Column("pid", INTEGER, "Process id of the session leader"),
            Column("sid", TEXT, "Security identifier of the logged-in user", platforms=_WINDOWS),
            Column("registry_hive", TEXT, "Registry hive loaded for the user under HKEY_USERS",
                   platforms=_WINDOWS),
        ],
        linux=f"{_L}:gen_logged_in_users",
        portable=f"{_P}:gen_logged_in_users",
        platforms=ALL_PLATFORMS,
        cacheable=True,
    ),
    table(
        "last",
        "Login and logout history kept in the wtmp file.",
        [
            Column("username", TEXT, "Account that logged in (empty on logout records)"),
            Column("tty", TEXT, "Terminal line of the session"),
            Column("pid", INTEGER, "Process id of the session leader"),
            Column("type", INTEGER, "Numeric utmp record type: 7 for a login, 8 for a logout"),
            Column("type_name", TEXT, "Name of the record type: user-process or dead-process"),
            Column("time", INTEGER, "When the record was written, unix seconds"),
            Column("host", TEXT, "Remote host the session came from, if any"),
        ],
        linux=f"{_L}:gen_last",
        platforms=POSIX_PLATFORMS,
        cacheable=True,
    ),
    table(
        "shadow",
        "Password ageing and lock state of local accounts from the shadow file (needs root).",
        [
            Column("password_status", TEXT, "active, locked, not_set or empty, judged from the hash field"),
            Column("hash_alg", TEXT, "Identifier of the crypt scheme from the $id$ prefix (1, 5, 6, y, ...)"),
            Column("last_change", BIGINT, "Day of the last password change, in days since 1970-01-01"),
            Column("min", BIGINT, "Days that must pass before the password may change again"),
            Column("max", BIGINT, "Days after which the password must be changed"),
            Column("warning", BIGINT, "Days of warning before the password expires"),
            Column("inactive", BIGINT, "Days after expiry during which the password is still accepted"),
            Column("expire", BIGINT, "Day the account is disabled, in days since 1970-01-01"),
            Column("flag", BIGINT, "Reserved field of the shadow file"),
            Column("username", TEXT, "Account name", index=True, optimized=True),
        ],
        linux=f"{_L}:gen_shadow",
        platforms=LINUX_ONLY,
    ),
    table(
        "sudoers",
        "Lines of the sudo policy, following #include and #includedir into the files they name.",
        [
            Column("source", TEXT, "File the line was read from"),
            Column("header", TEXT, "First word of the line: a user, alias keyword, Defaults or include"),
            Column("rule_details", TEXT, "Rest of the line after the first word"),
        ],
        linux=f"{_L}:gen_sudoers",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "authorized_keys",
        "Public keys allowed to log in as each user via ~/.ssh/authorized_keys and authorized_keys2.",
        [
            Column("uid", BIGINT, "Account whose home directory holds the file", additional=True),
            Column("algorithm", TEXT, "Key algorithm, e.g. ssh-ed25519 or ssh-rsa"),
            Column("key", TEXT, "Base64 public key blob"),
            Column("options", TEXT, "Restrictions written before the key (command=, from=, ...)"),
            Column("comment", TEXT, "Text after the key, often user@host"),
            Column("key_file", TEXT, "Path of the file the key came from"),
            _pid_ns(),
        ],
        linux=f"{_S}:gen_authorized_keys",
        platforms=POSIX_PLATFORMS,
        user_data=True,
        no_pkey=True,
    ),
    table(
        "known_hosts",
        "Host keys each user has accepted, one row per line of ~/.ssh/known_hosts.",
        [
            Column("uid", BIGINT, "Account whose home directory holds the file", index=True, optimized=True),
            Column("key", TEXT, "The whole known_hosts line: host pattern, key type and key"),
            Column("key_file", TEXT, "Path of the known_hosts file"),
        ],
        linux=f"{_S}:gen_known_hosts",
        platforms=POSIX_PLATFORMS,
        user_data=True,
        no_pkey=True,
    ),
    table(
        "user_ssh_keys",
        "Private keys found in each user's ~/.ssh directory, whether they are passphrase protected.",
        [
            Column("uid", BIGINT, "Account whose ~/.ssh holds the key", additional=True, optimized=True),
            Column("path", TEXT, "Path of the private key file", index=True),
            Column("encrypted", INTEGER, "1 when the key is protected by a passphrase, else 0"),
            Column("key_type", TEXT, "Key family (rsa, dsa, ec, ed25519, ...); empty when unknown"),
            Column("key_group_name", TEXT, "Named curve of an EC key (e.g. prime256v1); empty otherwise"),
            Column("key_length", INTEGER, "Size of the key in bits; -1 when it cannot be read"),
            Column("key_security_bits", INTEGER, "Estimated strength in bits of security; -1 when unknown"),
            _pid_ns(),
        ],
        linux=f"{_S}:gen_user_ssh_keys",
        platforms=ALL_PLATFORMS,
        user_data=True,
        no_pkey=True,
    ),
    table(
        "shell_history",
        "Commands from each user's shell history files (bash, zsh, sh), with timestamps when recorded.",
        [
            Column("uid", BIGINT, "Account whose history this is", additional=True, optimized=True),
            Column("time", INTEGER, "When the command ran, unix seconds; 0 when the file has no time"),
            Column("command", TEXT, "The command line as stored"),
            Column("history_file", TEXT, "Path of the history file"),
        ],
        linux=f"{_L}:gen_shell_history",
        platforms=POSIX_PLATFORMS,
        user_data=True,
        no_pkey=True,
    ),
    table(
        "ssh_configs",
        "Options of the OpenSSH client configuration, per user ~/.ssh/config and system-wide.",
        [
            Column("uid", BIGINT, "Owner of the configuration (0 for the system-wide file)",
                   additional=True, optimized=True),
            Column("block", TEXT, "The Host or Match line the option falls under; empty before the first"),
            Column("option", TEXT, "The option line, lower-cased"),
            Column("ssh_config_file", TEXT, "Path of the configuration file"),
        ],
        linux=f"{_S}:gen_ssh_configs",
        platforms=ALL_PLATFORMS,
        user_data=True,
        no_pkey=True,
    ),
]
