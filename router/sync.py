"""``topology sync``: declare the shared topology and every webhook's queues and bindings."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from router.broker import BrokerAdmin
from router.models import Webhook
from router.settings import Settings
from router.topology import Topology, binding_keys, shared_topology, webhook_topology


def sync_topology(settings: Settings, engine: Engine, admin: BrokerAdmin) -> int:
    """Declare everything the database implies (idempotent); returns the webhook count."""
    parts = [
        shared_topology(
            settings.exchange,
            settings.retry_schedule,
            settings.retry_jitter,
            settings.shared_queues_type,
        )
    ]
    with Session(engine) as session:
        for webhook in session.scalars(select(Webhook)):
            keys = (
                binding_keys(webhook.account_id, webhook.events, webhook.sites)
                if webhook.enabled
                else set()
            )
            parts.append(webhook_topology(settings.exchange, webhook.id, keys, settings.queue_type))
    admin.apply(Topology.merge(parts))
    return len(parts) - 1
