"""Account scoping: a principal reaches its own account's rows, and nothing else exists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.auth import Principal
from config.errors import ApiError
from router.models import DeliveryAttempt, Webhook


def load_webhook(
    session: Session, principal: Principal, webhook_id: str, for_update: bool = False
) -> Webhook:
    """The principal's webhook with this id; 404 when missing or another account's."""
    if not could_exist(webhook_id):
        raise _webhook_not_found(webhook_id)
    query = select(Webhook).where(
        Webhook.id == webhook_id, Webhook.account_id == principal.account_id
    )
    if for_update:
        query = query.with_for_update()
    webhook = session.scalar(query)
    if webhook is None:
        raise _webhook_not_found(webhook_id)
    return webhook


def load_attempt(session: Session, principal: Principal, log_id: str) -> DeliveryAttempt:
    """The principal's attempt row with this id; 404 when missing or another account's."""
    row = None
    if could_exist(log_id):
        row = session.scalar(
            select(DeliveryAttempt).where(
                DeliveryAttempt.id == log_id, DeliveryAttempt.account_id == principal.account_id
            )
        )
    if row is None:
        raise ApiError(404, f"log entry {log_id!r} not found")
    return row


def could_exist(row_id: str) -> bool:
    """False for an id no row can have; PostgreSQL would refuse to even compare it (500)."""
    return "\x00" not in row_id


def _webhook_not_found(webhook_id: str) -> ApiError:
    return ApiError(404, f"webhook {webhook_id!r} not found")
