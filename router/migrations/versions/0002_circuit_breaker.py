"""Circuit breaker state, per-webhook attempt limit, and why a webhook was disabled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("disabled_reason", sa.String(500), nullable=True))
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("circuit_state", sa.String(16), nullable=False, server_default="closed")
        )
        batch.add_column(sa.Column("circuit_opened_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("circuit_retry_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("circuit_cooldown_s", sa.Float(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        for column in (
            "circuit_cooldown_s",
            "circuit_retry_at",
            "circuit_opened_at",
            "circuit_state",
            "max_attempts",
            "disabled_reason",
        ):
            batch.drop_column(column)
