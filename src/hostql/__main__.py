"""``python -m hostql``: the same as the ``hostql`` command."""

from hostql.cli import entry

entry()
