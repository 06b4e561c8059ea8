"""Replays: dead letters back into delivery, and one logged event sent again.

Both go through ``router.return`` under the webhook's queue name, the way retries come
back, so a replay reaches that webhook alone and never the event's other subscribers.
Replays start again at attempt 1 with ``trigger`` "manual" in the log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from config.app import get_admin, get_sessions, get_settings
from config.auth import AdminPrincipal
from config.errors import ApiError, error_responses
from config.scope import load_attempt, load_webhook
from router.errors import InvalidEvent
from router.events import Event, parse_event
from router.models import DeliveryAttempt, Webhook
from router.topology import ATTEMPT_HEADER, TRIGGER_HEADER

router = APIRouter(prefix="/v1", responses=error_responses(401, 403, 404, 422, 503))

# Envelope field <- receiver payload field: the payload renamed occurred_at to timestamp.
_ENVELOPE_FROM_PAYLOAD = {
    "id": "id",
    "type": "type",
    "occurred_at": "timestamp",
    "account_id": "account_id",
    "site_id": "site_id",
    "data": "data",
}


class DeadLetterReplayRequest(BaseModel):
    """``POST /v1/webhooks/{id}/dead-letters/replay``: how many to move (default all)."""

    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(
        default=None, ge=1, description="At most this many, oldest first; null or absent: all"
    )


class DeadLetterReplay(BaseModel):
    """What a dead-letter replay moved, and what is still parked."""

    replayed: int = Field(description="Messages moved back into delivery")
    remaining: int = Field(description="Messages still in the dead-letter queue")


class ReplayQueued(BaseModel):
    """A logged event queued for delivery again."""

    status: Literal["queued"] = "queued"
    event_id: str
    webhook_id: str


@router.post("/webhooks/{webhook_id}/dead-letters/replay", tags=["webhooks"])
def replay_dead_letters(
    webhook_id: str,
    request: Request,
    principal: AdminPrincipal,
    body: Annotated[DeadLetterReplayRequest | None, Body()] = None,
) -> DeadLetterReplay:
    """Move dead letters back into the webhook's queue, oldest first, as attempt 1.

    At most 100,000 per call, and only those parked when the call starts; `remaining`
    says whether to call again. A disabled webhook keeps them queued until it is enabled.
    On a 503 part-way, what was moved stays moved and nothing is lost (at worst one
    message is both replayed and still parked); call again for the rest.
    """
    with get_sessions(request)() as session:
        webhook = load_webhook(session, principal, webhook_id)
    count = None if body is None else body.count
    replayed, remaining = get_admin(request).replay_dead_letters(webhook.id, count)
    return DeadLetterReplay(replayed=replayed, remaining=remaining)


@router.post(
    "/logs/{log_id}/replay",
    status_code=202,
    tags=["logs"],
    responses=error_responses(409),
)
def replay_log(log_id: str, request: Request, principal: AdminPrincipal) -> ReplayQueued:
    """Send the event of this attempt to its webhook again (queued, as attempt 1)."""
    with get_sessions(request)() as session:
        row = load_attempt(session, principal, log_id)
        webhook = load_webhook(session, principal, row.webhook_id)
    if not webhook.enabled:
        raise ApiError(
            409,
            f"webhook {webhook.id!r} is disabled; enable it before replaying its events",
        )
    event = rebuild_event(row, webhook, get_settings(request).max_event_bytes)
    get_admin(request).enqueue(
        webhook.id, event.to_json(), event.id, {ATTEMPT_HEADER: 1, TRIGGER_HEADER: "manual"}
    )
    return ReplayQueued(event_id=event.id, webhook_id=webhook.id)


def rebuild_event(row: DeliveryAttempt, webhook: Webhook, max_bytes: int) -> Event:
    """The envelope behind the receiver payload an attempt sent; 409 when it has none."""
    try:
        payload: Any = orjson.loads(row.request_body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise _not_replayable(row.id, "its request body is not a JSON object")
    envelope = {
        name: payload[source]
        for name, source in _ENVELOPE_FROM_PAYLOAD.items()
        if source in payload
    }
    try:
        event = parse_event(orjson.dumps(envelope), max_bytes)
    except InvalidEvent as exc:
        raise _not_replayable(row.id, exc.detail) from None
    if event.account_id != webhook.account_id:
        raise _not_replayable(row.id, "its event belongs to another account")
    return event


def _not_replayable(log_id: str, reason: str) -> ApiError:
    return ApiError(409, f"log entry {log_id!r} cannot be replayed: {reason}")
