"""Test sends: one sample event POSTed to a webhook now, from the API process, and logged.

The request is the one a worker would send (same body shaping, signatures, credentials
and redaction: the worker's own functions build it), so a test that passes means real
deliveries will too. It is one attempt and nothing more: a failure is never retried nor
dead-lettered and leaves the circuit alone. Disabled webhooks can be tested as well,
since checking an endpoint before enabling it is the point.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from config.app import get_sessions, get_settings
from config.auth import Principal
from config.errors import ApiError
from config.logs import to_log_detail
from config.schemas import EventName, LogDetail
from config.scope import load_webhook
from consumers.attempt_logging import log_attempt
from consumers.delivery import DeliveryRequest, DeliveryResult, Endpoint, HttpxDeliverer
from consumers.delivery import build_request as build_delivery_request
from consumers.directory import to_endpoint
from consumers.pipeline import attempt_row
from consumers.retry import Decision, Outcome, is_success
from router.events import EVENT_TYPES, Event
from router.models import DeliveryAttempt
from router.samples import DEFAULT_SAMPLE_SITE, sample_event
from router.settings import Settings
from router.topology import TRIGGER_HEADER

TEST_TRIGGER = "test"


class SendTestRequest(BaseModel):
    """``POST /v1/webhooks/{id}/test``: which event type to send (optional)."""

    model_config = ConfigDict(extra="forbid")

    event_type: EventName | None = Field(
        default=None,
        description="A catalog type; null or absent: the webhook's first subscribed type",
    )


def send_test_event(
    request: Request, principal: Principal, webhook_id: str, event_type: str | None
) -> LogDetail:
    """Send a sample event to the principal's webhook now; return the attempt as logged.

    Blocks until the endpoint answered or the delivery timeout passed: call it from a
    synchronous route (FastAPI runs those in its thread pool), not from an event loop.
    404 for another account's webhook, 422 (field ``event_type``) for an unknown type.
    """
    settings, sessions = get_settings(request), get_sessions(request)
    if event_type is not None and event_type not in EVENT_TYPES:
        raise ApiError(
            422, f"unknown event type {event_type!r}; see GET /v1/event-types", "event_type"
        )
    with sessions() as session:
        webhook = load_webhook(session, principal, webhook_id)
    site_id = webhook.sites[0] if webhook.sites else DEFAULT_SAMPLE_SITE
    event = sample_event(event_type or webhook.events[0], webhook.account_id, site_id)
    row = DeliveryAttempt(**deliver_test_event(to_endpoint(webhook), event, settings))
    with sessions() as session:
        session.add(row)
        session.commit()
    return to_log_detail(row)


def deliver_test_event(endpoint: Endpoint, event: Event, settings: Settings) -> dict[str, Any]:
    """POST ``event`` to ``endpoint`` once, as a worker would; the attempt row to store."""
    request = build_delivery_request(endpoint, event, int(time.time()))
    # The deliverer checks what the URL resolves to now: DNS may have changed since it was saved.
    result = asyncio.run(_post(request, settings))
    outcome = Outcome.DELIVERED if is_success(result.status_code) else Outcome.FAILED
    headers = {TRIGGER_HEADER: TEST_TRIGGER}
    row = attempt_row(endpoint, event, 1, headers, request, result, Decision(outcome))
    log_attempt(row, None)  # the same record a worker's attempt gets, trigger "test"
    return row


async def _post(request: DeliveryRequest, settings: Settings) -> DeliveryResult:
    # httpx is the API side's client; one short-lived client per test send, which is rare.
    deliverer = HttpxDeliverer(
        settings.delivery_timeout_s,
        settings.response_excerpt_bytes,
        max_connections=1,
        allow_private=settings.allow_private_targets,
    )
    try:
        return await deliverer.send(request)
    finally:
        await deliverer.aclose()
