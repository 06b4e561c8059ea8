"""Account scoping: a principal reaches its own account's rows, and nothing else exists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.auth import Principal
from config.errors import ApiError
from router.models import Webhook


def load_webhook(
    session: Session, principal: Principal, webhook_id: str, for_update: bool = False
) -> Webhook:
    """The principal's webhook with this id; 404 when missing or another account's."""
    query = select(Webhook).where(
        Webhook.id == webhook_id, Webhook.account_id == principal.account_id
    )
    if for_update:
        query = query.with_for_update()
    webhook = session.scalar(query)
    if webhook is None:
        raise ApiError(404, f"webhook {webhook_id!r} not found")
    return webhook
