"""Attempt counts by status from the index alone: event_type joins the status index.

The logs endpoint counts a webhook's attempts by status, optionally of one event type.
With the index on (webhook_id, status, id) every counted row was read from the table:
2 s for a webhook of a million attempts (bench/log_queries.py). With event_type at the
end of that index the count is an index-only scan, and the index still serves "failed
attempts of webhook X, newest first". The same number of indexes: inserts pay nothing
more than a slightly wider entry.

On PostgreSQL the index is built and the old one dropped CONCURRENTLY, outside the
migration's transaction: workers keep writing attempt rows meanwhile (a plain CREATE
INDEX would block them for about a minute at 10 million rows). SQLite has no such
option and locks the table while it builds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _swap(
        new=("ix_attempts_webhook_status_id_type", ["webhook_id", "status", "id", "event_type"]),
        old="ix_attempts_webhook_status_id",
    )


def downgrade() -> None:
    _swap(
        new=("ix_attempts_webhook_status_id", ["webhook_id", "status", "id"]),
        old="ix_attempts_webhook_status_id_type",
    )


def _swap(new: tuple[str, list[str]], old: str) -> None:
    # CONCURRENTLY cannot run inside a transaction block: Alembic's autocommit block
    # commits what came before and runs these outside one (a no-op wrapper on SQLite).
    with op.get_context().autocommit_block():
        op.create_index(new[0], "delivery_attempts", new[1], postgresql_concurrently=True)
        op.drop_index(old, table_name="delivery_attempts", postgresql_concurrently=True)
