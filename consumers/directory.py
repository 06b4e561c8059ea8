"""Loads what workers need about webhooks from the database (the source of truth)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from consumers.delivery import Endpoint
from router.broker import BrokerAdmin
from router.models import Webhook, as_utc_or_none
from router.settings import Settings
from router.topology import binding_keys, webhook_queue, webhook_topology


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
        max_attempts=webhook.max_attempts,
        circuit_state=webhook.circuit_state,
        circuit_retry_at=as_utc_or_none(webhook.circuit_retry_at),
        circuit_cooldown_s=webhook.circuit_cooldown_s,
        previous_secret=webhook.previous_secret,
        previous_secret_expires_at=as_utc_or_none(webhook.previous_secret_expires_at),
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


def disable_webhook(
    sessions: sessionmaker[Session],
    admin: BrokerAdmin,
    settings: Settings,
    webhook_id: str,
    reason: str,
) -> bool:
    """Disable a webhook whose endpoint is gone: unbind its queue (kept, with what waits
    in it) and tell every worker. False when it was already disabled or deleted."""
    with sessions() as session:
        row = session.get(Webhook, webhook_id, with_for_update=True)
        if row is None or not row.enabled:
            return False
        row.enabled = False
        row.disabled_reason = reason[:500]
        keys = binding_keys(row.account_id, row.events, row.sites)
        queue = webhook_queue(webhook_id)
        admin.apply(
            webhook_topology(settings.exchange, webhook_id, (), settings.queue_type),
            unbind=[(settings.exchange, queue, key) for key in sorted(keys)],
        )
        session.commit()
    admin.notify(webhook_id)
    return True
