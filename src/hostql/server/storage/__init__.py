"""Server storage: SQLAlchemy models, database access and migrations."""
