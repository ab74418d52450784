"""Table specs: files on disk and their content hashes."""

from __future__ import annotations

from hostql.tables.spec import (
    ALL_PLATFORMS,
    BIGINT,
    DARWIN,
    INTEGER,
    LINUX,
    TEXT,
    WINDOWS,
    Column,
    TableSpec,
    table,
)

_LINUX = frozenset({LINUX})
_WINDOWS = frozenset({WINDOWS})
_DARWIN = frozenset({DARWIN})

_FILE_GEN = "hostql.tables.common.files:gen_file"
_HASH_GEN = "hostql.tables.common.hashing:gen_hash"

_PATH_HELP = (
    "Full path of the entry; required unless directory is given. LIKE patterns are"
    " resolved on disk: % stays within one level, a final %% descends into everything below"
)
_DIRECTORY_HELP = (
    "Directory whose entries are listed (one level); with LIKE, every matching directory is listed"
)

TABLES: list[TableSpec] = [
    table(
        "file",
        "Metadata of files and directories (owner, permissions, size, times, type) looked up by"
        " path, by directory, or by a LIKE pattern resolved on disk.",
        [
            Column("path", TEXT, _PATH_HELP, index=True, required=True, optimized=True),
            Column("directory", TEXT, _DIRECTORY_HELP, required=True, optimized=True),
            Column("filename", TEXT, "Last component of path ('.' when path ends with a slash)"),
            Column("inode", BIGINT, "Inode number on its filesystem"),
            Column("uid", BIGINT, "User ID of the owner"),
            Column("gid", BIGINT, "Group ID of the owner"),
            Column("mode", TEXT, "Permission bits incl. setuid/setgid/sticky as 4 octal digits, e.g. 0644"),
            Column("device", BIGINT, "For device nodes, the device they stand for (st_rdev); else 0"),
            Column("size", BIGINT, "Length in bytes"),
            Column("block_size", INTEGER, "Preferred I/O block size of the filesystem"),
            Column("atime", BIGINT, "Time of last access, unix seconds"),
            Column("mtime", BIGINT, "Time of last content change, unix seconds"),
            Column("ctime", BIGINT, "Time of last metadata (inode) change, unix seconds"),
            Column("btime", BIGINT, "Creation time, unix seconds; 0 where the filesystem does not record it"),
            Column("hard_links", INTEGER, "How many directory entries name this inode"),
            Column("symlink", INTEGER, "1 when path itself is a symbolic link (other fields describe its target)"),
            Column("type", TEXT, "regular, directory, symlink (dangling link), character, block, fifo or socket"),
            Column("symlink_target_path", TEXT, "Target stored in the symbolic link, as written; NULL otherwise"),
            Column("attributes", TEXT, "Windows file attribute letters", platforms=_WINDOWS),
            Column("volume_serial", TEXT, "Serial number of the Windows volume", platforms=_WINDOWS),
            Column("file_id", TEXT, "Windows file identifier on its volume", platforms=_WINDOWS),
            Column("file_version", TEXT, "Version resource of a Windows executable", collate="VERSION",
                   platforms=_WINDOWS),
            Column("product_version", TEXT, "Product version resource of a Windows executable",
                   collate="VERSION", platforms=_WINDOWS),
            Column("original_filename", TEXT, "Name the Windows executable was built as", platforms=_WINDOWS),
            Column("shortcut_target_path", TEXT, "Path a Windows .lnk shortcut points at", platforms=_WINDOWS),
            Column("shortcut_target_type", TEXT, "Kind of the shortcut's target as Windows names it",
                   platforms=_WINDOWS),
            Column("shortcut_target_location", TEXT, "Folder holding the shortcut's target", platforms=_WINDOWS),
            Column("shortcut_start_in", TEXT, "Working directory the shortcut starts its target in",
                   platforms=_WINDOWS),
            Column("shortcut_run", TEXT, "Window state the shortcut opens its target with", platforms=_WINDOWS),
            Column("shortcut_comment", TEXT, "Comment stored in the shortcut", platforms=_WINDOWS),
            Column("bsd_flags", TEXT, "macOS chflags flags set on the file", platforms=_DARWIN),
            Column("pid_with_namespace", INTEGER, "Read the files as seen from this process's mount namespace"
                   " (not supported: rows always come from the agent's own view, with 0 here)",
                   additional=True, hidden=True, platforms=_LINUX),
            Column("mount_namespace_id", TEXT, "Mount namespace the row was read from", hidden=True,
                   platforms=_LINUX),
        ],
        linux=_FILE_GEN,
        darwin=_FILE_GEN,
        platforms=ALL_PLATFORMS,
        utility=True,
        examples=(
            "SELECT * FROM file WHERE path = '/etc/passwd'",
            "SELECT path, size FROM file WHERE directory = '/etc'",
            "SELECT path FROM file WHERE path LIKE '/etc/%%'",
        ),
    ),
    table(
        "hash",
        "MD5, SHA-1 and SHA-256 digests of regular files given by path, directory or LIKE pattern;"
        " results are cached until the file changes.",
        [
            Column("path", TEXT, _PATH_HELP, index=True, required=True, optimized=True),
            Column("directory", TEXT, "Directory whose regular files are hashed (one level)",
                   required=True, optimized=True),
            Column("md5", TEXT, "MD5 digest of the content, lowercase hex ('' if larger than --read_max)",
                   collate="NOCASE"),
            Column("sha1", TEXT, "SHA-1 digest of the content, lowercase hex ('' if larger than --read_max)",
                   collate="NOCASE"),
            Column("sha256", TEXT, "SHA-256 digest of the content, lowercase hex ('' if larger than --read_max)",
                   collate="NOCASE"),
            Column("pid_with_namespace", INTEGER, "Hash files as seen from this process's mount namespace"
                   " (not supported: such queries return no rows)",
                   additional=True, hidden=True, platforms=_LINUX),
            Column("mount_namespace_id", TEXT, "Mount namespace the file was read from", hidden=True,
                   platforms=_LINUX),
        ],
        linux=_HASH_GEN,
        darwin=_HASH_GEN,
        platforms=ALL_PLATFORMS,
        examples=(
            "SELECT sha256 FROM hash WHERE path = '/etc/passwd'",
            "SELECT f.path, h.sha256 FROM file f JOIN hash h USING (path) WHERE f.directory = '/etc'",
        ),
    ),
]
