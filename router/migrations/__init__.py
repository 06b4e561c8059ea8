"""Alembic migrations of the router database."""
