"""Attempt counts by status from the index alone: event_type joins the status index.

The logs endpoint counts a webhook's attempts by status, optionally of one event type.
With the index on (webhook_id, status, id) every counted row was read from the table:
2 s for a webhook of a million attempts (bench/log_queries.py). With event_type at the
end of that index the count is an index-only scan, and the index still serves "failed
attempts of webhook X, newest first". The same number of indexes: inserts pay nothing
more than a slightly wider entry.

Building the index locks writes to the table for as long as it takes (about a minute
at 10 million rows on PostgreSQL): workers hold their acks and retry meanwhile.

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
    op.create_index(
        "ix_attempts_webhook_status_id_type",
        "delivery_attempts",
        ["webhook_id", "status", "id", "event_type"],
    )
    op.drop_index("ix_attempts_webhook_status_id", table_name="delivery_attempts")


def downgrade() -> None:
    op.create_index(
        "ix_attempts_webhook_status_id", "delivery_attempts", ["webhook_id", "status", "id"]
    )
    op.drop_index("ix_attempts_webhook_status_id_type", table_name="delivery_attempts")
