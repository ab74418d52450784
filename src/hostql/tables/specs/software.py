"""Table specs: installed software, package sources and persistence points."""

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

_LINUX = "hostql.tables.linux"
_COMMON = "hostql.tables.common"


def _pid_ns() -> Column:
    return Column(
        "pid_with_namespace",
        INTEGER,
        "Read the data as seen from this process's mount namespace (through /proc/<pid>/root)",
        additional=True,
        hidden=True,
        platforms=LINUX_ONLY,
    )


def _mnt_ns() -> Column:
    return Column(
        "mount_namespace_id",
        TEXT,
        "Inode number of the mount namespace the data was read from, when pid_with_namespace is used",
        hidden=True,
        platforms=LINUX_ONLY,
    )


TABLES: list[TableSpec] = [
    table(
        "deb_packages",
        "Debian packages known to dpkg (everything in the dpkg status database that is"
        " not purely 'not-installed'), read straight from <admindir>/status.",
        [
            Column("name", TEXT, "Package name, without the architecture qualifier"),
            Column("version", TEXT, "Installed version string, epoch included when present",
                   collate="VERSION_DPKG"),
            Column("source", TEXT, "Source package the binary was built from (empty when it matches the name)"),
            Column("size", BIGINT, "Installed-Size field as recorded by dpkg (kibibytes)"),
            Column("arch", TEXT, "Architecture the package was built for (amd64, all, ...)"),
            Column("revision", TEXT, "Debian revision: the part of the version after its last hyphen"),
            Column("status", TEXT, "dpkg's want/error/state triple, e.g. 'install ok installed'"),
            Column("maintainer", TEXT, "Person or team maintaining the package"),
            Column("section", TEXT, "Archive section the package belongs to"),
            Column("priority", TEXT, "Debian priority (required, important, standard, optional, extra)"),
            Column("admindir", TEXT, "dpkg database directory the row came from; constrain it to read another one",
                   additional=True, optimized=True),
            _pid_ns(),
            _mnt_ns(),
        ],
        linux=f"{_LINUX}.dpkg:gen_deb_packages",
        platforms=LINUX_ONLY,
        cacheable=True,
    ),
    table(
        "deb_package_files",
        "Paths installed by each dpkg package, from the <admindir>/info/<package>.list files.",
        [
            Column("package", TEXT, "Package that owns the path", index=True, optimized=True),
            Column("path", TEXT, "File or directory path installed by the package", index=True),
            Column("admindir", TEXT, "dpkg database directory the list was read from",
                   additional=True, optimized=True),
        ],
        linux=f"{_LINUX}.dpkg:gen_deb_package_files",
        platforms=LINUX_ONLY,
    ),
    table(
        "rpm_packages",
        "RPM packages from the rpm database; empty on hosts without an rpm database.",
        [
            Column("name", TEXT, "Package name", index=True, optimized=True),
            Column("version", TEXT, "Upstream version", index=True, collate="VERSION_RHEL"),
            Column("release", TEXT, "Distribution release of the package", index=True),
            Column("source", TEXT, "Source RPM file name"),
            Column("size", BIGINT, "Installed size in bytes"),
            Column("sha1", TEXT, "SHA1 digest of the package header", collate="NOCASE"),
            Column("arch", TEXT, "Build architecture", index=True),
            Column("epoch", INTEGER, "Epoch number, when the package sets one", index=True),
            Column("install_time", INTEGER, "When the package was installed (unix seconds)"),
            Column("vendor", TEXT, "Vendor that built the package"),
            Column("package_group", TEXT, "Group the package is filed under"),
            _pid_ns(),
            _mnt_ns(),
        ],
        linux=f"{_LINUX}.packages:gen_rpm_packages",
        platforms=LINUX_ONLY,
        cacheable=True,
    ),
    table(
        "python_packages",
        "Python distributions found as *.dist-info / *.egg-info metadata in the system"
        " and per-user site-packages / dist-packages directories, or in any directory given.",
        [
            Column("name", TEXT, "Distribution name from the metadata"),
            Column("uid", BIGINT, "Owner of the home directory the package was found in (NULL for system paths)",
                   index=True),
            Column("version", TEXT, "Version from the metadata", collate="VERSION"),
            Column("summary", TEXT, "One-line summary from the metadata"),
            Column("author", TEXT, "Author named in the metadata"),
            Column("license", TEXT, "License named in the metadata"),
            Column("path", TEXT, "The .dist-info or .egg-info entry the row was read from"),
            Column("directory", TEXT, "Site directory that was scanned; constrain it to scan another one",
                   index=True, optimized=True),
            _pid_ns(),
        ],
        portable=f"{_COMMON}.language_packages:gen_python_packages",
        platforms=ALL_PLATFORMS,
        user_data=True,
    ),
    table(
        "npm_packages",
        "Node.js packages found as package.json files under global node_modules"
        " directories, or under any directory given.",
        [
            Column("name", TEXT, "Package name from package.json"),
            Column("version", TEXT, "Package version", collate="VERSION"),
            Column("description", TEXT, "Description from package.json"),
            Column("author", TEXT, "Author from package.json (name only)"),
            Column("license", TEXT, "License from package.json"),
            Column("homepage", TEXT, "Homepage URL from package.json"),
            Column("path", TEXT, "Path of the package.json file"),
            Column("directory", TEXT, "node_modules tree (or project) that was scanned",
                   index=True, optimized=True),
            Column("depth", INTEGER, "How many node_modules levels below the scanned directory the package sits"),
            Column("max_depth", INTEGER, "Deepest nested node_modules level to descend into (default 0)",
                   additional=True, hidden=True),
            _pid_ns(),
            _mnt_ns(),
        ],
        portable=f"{_COMMON}.language_packages:gen_npm_packages",
        platforms=ALL_PLATFORMS,
    ),
    table(
        "apt_sources",
        "APT repositories configured in sources.list, sources.list.d/*.list and deb822"
        " *.sources files, enriched with the cached Release data when APT has fetched it.",
        [
            Column("name", TEXT, "Repository host/path followed by the suite"),
            Column("source", TEXT, "Configuration file the entry comes from"),
            Column("base_uri", TEXT, "Repository URI without trailing slashes"),
            Column("release", TEXT, "Codename from the cached Release file"),
            Column("version", TEXT, "Version from the cached Release file", collate="VERSION_DPKG"),
            Column("maintainer", TEXT, "Origin from the cached Release file"),
            Column("components", TEXT, "Components published by the repository (configured ones when no cache)"),
            Column("architectures", TEXT, "Architectures published by the repository (configured ones when no cache)"),
            _pid_ns(),
        ],
        linux=f"{_LINUX}.packages:gen_apt_sources",
        platforms=LINUX_ONLY,
    ),
    table(
        "yum_sources",
        "YUM/DNF repositories defined in /etc/yum.conf and /etc/yum.repos.d/*.repo.",
        [
            Column("name", TEXT, "Human readable repository name"),
            Column("source", TEXT, "File the repository is defined in"),
            Column("baseurl", TEXT, "Base URL(s) of the repository"),
            Column("mirrorlist", TEXT, "URL of a mirror list"),
            Column("metalink", TEXT, "URL of a metalink document"),
            Column("enabled", TEXT, "Whether the repository is enabled (as written)"),
            Column("gpgcheck", TEXT, "Whether package signatures are checked (as written)"),
            Column("gpgkey", TEXT, "Location of the signing key(s)"),
            _pid_ns(),
        ],
        linux=f"{_LINUX}.packages:gen_yum_sources",
        platforms=LINUX_ONLY,
    ),
    table(
        "crontab",
        "Scheduled cron jobs from /etc/crontab, /etc/cron.d and the per-user spool"
        " directories, one row per job line.",
        [
            Column("event", TEXT, "Special schedule such as @reboot or @daily, if the line uses one"),
            Column("minute", TEXT, "Minute field"),
            Column("hour", TEXT, "Hour field"),
            Column("day_of_month", TEXT, "Day-of-month field"),
            Column("month", TEXT, "Month field"),
            Column("day_of_week", TEXT, "Day-of-week field"),
            Column("command", TEXT, "Rest of the line; system crontabs keep their user field in front"),
            Column("path", TEXT, "Crontab file the job comes from"),
            _pid_ns(),
        ],
        linux=f"{_LINUX}.persistence:gen_crontab",
        platforms=POSIX_PLATFORMS,
        cacheable=True,
    ),
    table(
        "systemd_units",
        "systemd units. When systemd is PID 1 runtime states come from systemctl;"
        " otherwise units are read from their unit files and the runtime columns are NULL.",
        [
            Column("id", TEXT, "Unit name, e.g. ssh.service"),
            Column("description", TEXT, "Description= of the unit"),
            Column("load_state", TEXT, "Whether the unit definition loaded (loaded, masked, not-found, ...)"),
            Column("active_state", TEXT, "High-level runtime state (NULL when systemd is not running)"),
            Column("sub_state", TEXT, "Unit-type specific runtime state (NULL when systemd is not running)"),
            Column("unit_file_state", TEXT, "Install state of the unit file (enabled, disabled, static, masked, ...)"),
            Column("following", TEXT, "Unit this one follows, if any (runtime only)"),
            Column("object_path", TEXT, "D-Bus object path of the unit (runtime only)"),
            Column("job_id", BIGINT, "ID of a queued job for the unit (runtime only)"),
            Column("job_type", TEXT, "Type of the queued job (runtime only)"),
            Column("job_path", TEXT, "D-Bus path of the queued job (runtime only)"),
            Column("fragment_path", TEXT, "Unit file the unit was loaded from"),
            Column("user", TEXT, "User= the service runs as, when set"),
            Column("source_path", TEXT, "File the unit was generated from (e.g. a SysV init script)"),
        ],
        linux=f"{_LINUX}.persistence:gen_systemd_units",
        platforms=LINUX_ONLY,
    ),
    table(
        "startup_items",
        "Things started automatically: XDG autostart entries, init.d scripts and"
        " systemd units (enabled ones from the unit files when systemd is not running).",
        [
            Column("name", TEXT, "Name of the item"),
            Column("path", TEXT, "Program, script or unit file that is started"),
            Column("args", TEXT, "Arguments given to the program, when known separately"),
            Column("type", TEXT, "Kind of item ('Startup Item' or 'systemd unit')"),
            Column("source", TEXT, "Directory or file the item was found through"),
            Column("status", TEXT, "enabled for autostart entries, the active state for systemd units"),
            Column("username", TEXT, "User the item belongs to or runs as"),
        ],
        linux=f"{_LINUX}.persistence:gen_startup_items",
        platforms=ALL_PLATFORMS,
        cacheable=True,
    ),
    table(
        "suid_bin",
        "Regular files carrying the setuid or setgid bit in the usual binary"
        " directories (and /tmp), searched recursively.",
        [
            Column("path", TEXT, "Path of the file"),
            Column("username", TEXT, "Owner of the file"),
            Column("groupname", TEXT, "Group of the file"),
            Column("permissions", TEXT, "S for setuid, G for setgid, SG for both"),
            _pid_ns(),
        ],
        linux=f"{_LINUX}.persistence:gen_suid_bin",
        platforms=POSIX_PLATFORMS,
        cacheable=True,
    ),
]
