"""Table specs: the classic name-service files (hosts, services, protocols, resolv.conf)."""

from __future__ import annotations

from hostql.tables.spec import BIGINT, INTEGER, LINUX_ONLY, POSIX_PLATFORMS, TEXT, Column, table

_MOD = "hostql.tables.common.etc_files"


_PID_NS = Column(
    "pid_with_namespace",
    INTEGER,
    "Read the file as seen from this process's mount namespace (e.g. inside a container); 0 for the host view",
    additional=True,
    hidden=True,
    platforms=LINUX_ONLY,
)

TABLES = [
    table(
        "etc_hosts",
        "Static host name mappings from the hosts file, one row per entry.",
        [
            Column("address", TEXT, "IP address the names map to"),
            Column("hostnames", TEXT, "Names and aliases for the address, separated by single spaces"),
            _PID_NS,
        ],
        # Plain file parsing: one implementation serves every platform.
        linux=f"{_MOD}:gen_etc_hosts",
        darwin=f"{_MOD}:gen_etc_hosts",
        windows=f"{_MOD}:gen_etc_hosts",
        aliases=("hosts",),
        cacheable=True,
    ),
    table(
        "etc_protocols",
        "IP protocol numbers and names from the protocols file.",
        [
            Column("name", TEXT, "Official protocol name"),
            Column("number", INTEGER, "Protocol number in the IP header"),
            Column("alias", TEXT, "First alias of the protocol"),
            Column("comment", TEXT, "Text after the # on the line"),
        ],
        # Plain file parsing: one implementation serves every platform.
        linux=f"{_MOD}:gen_etc_protocols",
        darwin=f"{_MOD}:gen_etc_protocols",
        windows=f"{_MOD}:gen_etc_protocols",
        cacheable=True,
    ),
    table(
        "etc_services",
        "Well-known network service names and ports from the services file.",
        [
            Column("name", TEXT, "Official service name"),
            Column("port", INTEGER, "Port number"),
            Column("protocol", TEXT, "Transport protocol, e.g. tcp or udp"),
            Column("aliases", TEXT, "Other names of the service, separated by single spaces"),
            Column("comment", TEXT, "Text after the # on the line"),
        ],
        # Plain file parsing: one implementation serves every platform.
        linux=f"{_MOD}:gen_etc_services",
        darwin=f"{_MOD}:gen_etc_services",
        windows=f"{_MOD}:gen_etc_services",
        cacheable=True,
    ),
    table(
        "dns_resolvers",
        "Resolver configuration from resolv.conf as the C library reads it: name servers, search domains"
        " and sort list.",
        [
            Column("id", INTEGER, "Position of the entry among entries of its type, from 0"),
            Column("type", TEXT, "nameserver, search or sortlist"),
            Column("address", TEXT, "Server or sort-list address, or search domain"),
            Column("netmask", TEXT, "Prefix length: full length for servers, the mask for sort-list entries"),
            Column("options", BIGINT, "Resolver option flags (glibc RES_* bitmask) that apply to every entry"),
            _PID_NS,
        ],
        linux=f"{_MOD}:gen_dns_resolvers",
        darwin=f"{_MOD}:gen_dns_resolvers",
        platforms=POSIX_PLATFORMS,
    ),
]
