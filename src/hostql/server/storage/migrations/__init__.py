"""Alembic migrations of the server's schema (run by ``hostql server prepare-db``)."""
