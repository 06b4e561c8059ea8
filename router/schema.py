"""Bring the database schema up to date with Alembic."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine


def upgrade_database(engine: Engine) -> None:
    """Apply every pending migration (idempotent)."""
    config = Config()
    config.set_main_option("script_location", "router:migrations")
    # A plain connection, not one inside a transaction of ours: Alembic then runs each
    # migration in its own transaction, and a migration may step outside it (an index
    # built CONCURRENTLY on PostgreSQL, see 0005).
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
