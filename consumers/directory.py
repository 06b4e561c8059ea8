"""Loads what workers need about webhooks from the database (the source of truth)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from consumers.delivery import Endpoint
from router.models import Webhook


def to_endpoint(webhook: Webhook) -> Endpoint:
    """The delivery view of a webhook row."""
    return Endpoint(
        webhook_id=webhook.id,
        account_id=webhook.account_id,
        url=webhook.url,
        auth_mode=webhook.auth_mode,
        auth_credentials=dict(webhook.auth_credentials),
        secrets=(webhook.secret,),
        include_order=webhook.include_order,
    )


def load_endpoints(sessions: sessionmaker[Session]) -> dict[str, Endpoint]:
    """Every enabled webhook, by id."""
    with sessions() as session:
        rows = session.scalars(select(Webhook).where(Webhook.enabled.is_(True)))
        return {row.id: to_endpoint(row) for row in rows}


def load_endpoint(sessions: sessionmaker[Session], webhook_id: str) -> Endpoint | None:
    """One webhook, or None when it is gone or disabled."""
    with sessions() as session:
        row = session.get(Webhook, webhook_id)
        return to_endpoint(row) if row is not None and row.enabled else None
