"""Schema migrations, run from code: upgrade, where a database stands, schema diff.

The Alembic scripts live in ``storage/migrations`` (``env.py`` and
``versions/``).  The ``Config`` is built here, so no ``alembic.ini`` is needed
at run time.  To write a new revision after changing ``models.py``::

    python -m hostql.server.storage.migrate revision "add hosts.foo"

(autogenerate against a scratch SQLite database migrated to head), then read
and fix the generated file.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from hostql.server.storage.db import Database
from hostql.server.storage.models import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class MigrationStatus:
    current: tuple[str, ...]  # revisions recorded in the database (empty: never migrated)
    head: str  # newest revision this code knows
    pending: tuple[str, ...]  # revisions still to apply, oldest first
    unknown: tuple[str, ...]  # revisions in the database this code does not know (newer server?)

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.unknown and self.head in self.current


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", str(MIGRATIONS / "versions"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "no migrations found"
    return head


def upgrade(database: Database, revision: str = "head") -> None:
    """Apply every pending migration (a no-op when the database is current),
    then the data every server needs (builtin labels), idempotently."""
    with database.engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
    if revision == "head":
        seed(database)


def seed(database: Database) -> None:
    """Rows Fleet creates with its migrations: the builtin labels."""
    from hostql.server.services.labels import seed_builtin_labels

    with database.session() as session:
        seed_builtin_labels(session)


def current_revisions(database: Database) -> tuple[str, ...]:
    with database.engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def status(database: Database) -> MigrationStatus:
    scripts = script_directory()
    head = head_revision()
    current = current_revisions(database)
    known = {script.revision for script in scripts.walk_revisions()}
    unknown = tuple(rev for rev in current if rev not in known)
    if unknown:
        return MigrationStatus(current, head, (), unknown)
    applied: set[str] = set()
    for rev in current:
        applied.update(script.revision for script in scripts.iterate_revisions(rev, "base"))
    pending = tuple(script.revision for script in reversed(list(scripts.walk_revisions()))
                    if script.revision not in applied)
    return MigrationStatus(current, head, pending, ())


def is_up_to_date(database: Database) -> bool:
    return status(database).up_to_date


def schema_diff(database: Database) -> list[Any]:
    """What differs between the database's tables and ``models.py`` (empty: nothing)."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    return [entry for entry in diff if not _is_alembic_table(entry)]


def _is_alembic_table(entry: Any) -> bool:
    return isinstance(entry, tuple) and entry[0] == "remove_table" and entry[1].name == "alembic_version"


def _new_revision(message: str) -> None:
    """Autogenerate the next revision (developer tool)."""
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(f"sqlite:///{scratch}/scratch.db")
        upgrade(database)
        with database.engine.begin() as connection:
            scripts = script_directory()
            number = len(list(scripts.walk_revisions())) + 1
            command.revision(alembic_config(connection), message=message, autogenerate=True,
                             rev_id=f"{number:04d}")
        database.dispose()


if __name__ == "__main__":  # pragma: no cover - developer tool
    if len(sys.argv) == 3 and sys.argv[1] == "revision":
        _new_revision(sys.argv[2])
    else:
        sys.exit("usage: python -m hostql.server.storage.migrate revision MESSAGE")
