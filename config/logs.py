"""``/v1/webhooks/{id}/logs`` and ``/v1/logs/{id}``: delivery attempts, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator
from sqlalchemy import select

from config.app import get_sessions
from config.auth import CurrentPrincipal
from config.errors import ApiError, error_responses
from config.schemas import (
    Cursor,
    Limit,
    LogDetail,
    LogEntry,
    LogList,
    RequestSent,
    ResponseReceived,
    encode_cursor,
)
from config.webhooks import load_webhook
from router.events import EVENT_TYPES
from router.models import DeliveryAttempt, as_utc, as_utc_or_none

router = APIRouter(prefix="/v1", tags=["logs"], responses=error_responses(401, 404, 422))


def _check_event_type(value: str | None) -> str | None:
    if value is not None and value not in EVENT_TYPES:
        raise ValueError(f"unknown event type {value!r}; see GET /v1/event-types")
    return value


def _to_utc(value: datetime | None) -> datetime | None:
    # Naive means UTC. SQLite compares stored UTC text, so the bound value must be UTC too.
    return as_utc_or_none(value)


StatusFilter = Annotated[
    Literal["failed", "succeeded"] | None, Query(description="Only failed or succeeded")
]
EventTypeFilter = Annotated[
    str | None, Query(description="Only this event type"), AfterValidator(_check_event_type)
]
Since = Annotated[
    datetime | None,
    Query(description="Attempts at or after this ISO 8601 time (UTC when no offset)"),
    AfterValidator(_to_utc),
]
Until = Annotated[
    datetime | None,
    Query(description="Attempts before this ISO 8601 time (UTC when no offset)"),
    AfterValidator(_to_utc),
]


@router.get("/webhooks/{webhook_id}/logs")
def list_logs(
    webhook_id: str,
    request: Request,
    principal: CurrentPrincipal,
    status: StatusFilter = None,
    event_type: EventTypeFilter = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> LogList:
    """A webhook's delivery attempts, newest first, optionally filtered."""
    query = select(DeliveryAttempt).where(
        DeliveryAttempt.webhook_id == webhook_id,
        DeliveryAttempt.account_id == principal.account_id,
    )
    if status is not None:
        query = query.where(DeliveryAttempt.status == status)
    if event_type is not None:
        query = query.where(DeliveryAttempt.event_type == event_type)
    if since is not None:
        query = query.where(DeliveryAttempt.created_at >= since)
    if until is not None:
        query = query.where(DeliveryAttempt.created_at < until)
    if cursor is not None:
        query = query.where(DeliveryAttempt.id < cursor)
    with get_sessions(request)() as session:
        load_webhook(session, principal, webhook_id)
        rows = list(session.scalars(query.order_by(DeliveryAttempt.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return LogList(
        items=[to_log_entry(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.get("/logs/{log_id}")
def get_log(log_id: str, request: Request, principal: CurrentPrincipal) -> LogDetail:
    """One attempt: the request sent (auth redacted) and the response received."""
    query = select(DeliveryAttempt).where(
        DeliveryAttempt.id == log_id, DeliveryAttempt.account_id == principal.account_id
    )
    with get_sessions(request)() as session:
        row = session.scalar(query)
    if row is None:
        raise ApiError(404, f"log entry {log_id!r} not found")
    return LogDetail(
        **to_log_entry(row).model_dump(),
        request=RequestSent(
            url=row.request_url, headers=dict(row.request_headers), body=row.request_body
        ),
        response=ResponseReceived(status=row.response_status, body=row.response_body),
    )


def to_log_entry(row: DeliveryAttempt) -> LogEntry:
    """The API view of an attempt row."""
    return LogEntry(
        id=row.id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        event_type=row.event_type,
        attempt=row.attempt,
        trigger=row.trigger,
        status="succeeded" if row.status == "succeeded" else "failed",
        outcome=row.outcome,
        response_status=row.response_status,
        error=row.error,
        duration_ms=row.duration_ms,
        created_at=as_utc(row.created_at),
        next_retry_at=as_utc_or_none(row.next_retry_at),
    )
