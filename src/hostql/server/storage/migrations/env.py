"""Alembic's environment: runs migrations on the connection handed over in code.

:mod:`hostql.server.storage.migrate` builds the Alembic ``Config`` and puts an
open connection in ``config.attributes["connection"]``; no ``alembic.ini`` is
read.  ``render_as_batch`` makes ALTERs work on SQLite (copy-and-move).
"""

from __future__ import annotations

from alembic import context

from hostql.server.storage.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("hostql migrations run through hostql.server.storage.migrate, with a connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run hostql server prepare-db")
run_migrations_online()
