"""Attempt rows written straight into the log database, as a worker writes them."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, insert

from router.models import DeliveryAttempt, new_id


def add_attempt(engine: Engine, webhook: dict[str, Any], account: str) -> str:
    """A failed first attempt of ``webhook`` (its API JSON) with a replayable body; its id."""
    attempt_id = new_id("att")
    event_id = f"evt_{secrets.token_hex(8)}"
    body = (
        f'{{"type": "delivery.done", "timestamp": "2026-11-27T18:00:00Z", "id": "{event_id}",'
        f' "account_id": "{account}", "site_id": "paris", "data": {{"order": {{"id": "o1"}}}}}}'
    )
    row = {
        "id": attempt_id,
        "webhook_id": webhook["id"],
        "account_id": account,
        "event_id": event_id,
        "event_type": "delivery.done",
        "attempt": 1,
        "trigger": "event",
        "status": "failed",
        "outcome": "retrying",
        "response_status": 500,
        "response_body": f"{account}-private-response",
        "error": "HTTP 500",
        "duration_ms": 12,
        "request_url": webhook["url"],
        "request_headers": {"content-type": "application/json"},
        "request_body": body,
    }
    with engine.begin() as connection:
        connection.execute(insert(DeliveryAttempt), [row])
    return attempt_id
