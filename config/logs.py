"""``/v1/webhooks/{id}/logs`` and ``/v1/logs/{id}``: delivery attempts, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, NamedTuple, cast

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator
from sqlalchemy import Select, func, select

from config.app import get_sessions
from config.auth import CurrentPrincipal
from config.errors import error_responses
from config.schemas import (
    Cursor,
    Limit,
    LogCounts,
    LogDetail,
    LogEntry,
    LogList,
    RequestSent,
    ResponseReceived,
    Trigger,
    encode_cursor,
)
from config.scope import load_attempt, load_webhook
from router.events import EVENT_TYPES
from router.models import DeliveryAttempt, as_utc, as_utc_or_none
from router.topology import TRIGGERS

router = APIRouter(prefix="/v1", tags=["logs"], responses=error_responses(401, 503))


def _check_event_type(value: str | None) -> str | None:
    if value is not None and value not in EVENT_TYPES:
        raise ValueError(f"unknown event type {value!r}; see GET /v1/event-types")
    return value


def _to_utc(value: datetime | None) -> datetime | None:
    # Naive means UTC. SQLite compares stored UTC text, so the bound value must be UTC too.
    try:
        return as_utc_or_none(value)
    except OverflowError:
        # 0001-01-01T00:00+01:00 is a valid ISO 8601 time with no UTC equivalent.
        raise ValueError("is out of range once converted to UTC") from None


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


class LogQueries(NamedTuple):
    """The two statements behind a page of logs."""

    page: Select[DeliveryAttempt]
    counts: Select[str, int]


def log_queries(
    webhook_id: str,
    account_id: str,
    *,
    status: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> LogQueries:
    """A page of a webhook's attempts (newest first, one row more than ``limit`` to tell
    whether another page follows) and their counts by status under the other filters.

    For a webhook the caller has checked belongs to ``account_id``. Apart from the route,
    bench/log_queries.py times these very statements.
    """
    scope = [DeliveryAttempt.webhook_id == webhook_id]
    if event_type is not None:
        scope.append(DeliveryAttempt.event_type == event_type)
    if since is not None:
        scope.append(DeliveryAttempt.created_at >= since)
    if until is not None:
        scope.append(DeliveryAttempt.created_at < until)
    # The account is checked on every row shown. The counts leave it out: the caller
    # checked that the webhook is the account's (load_webhook), every attempt carries
    # its webhook's account, and without it they read the status index alone.
    page = select(DeliveryAttempt).where(*scope, DeliveryAttempt.account_id == account_id)
    if status is not None:
        page = page.where(DeliveryAttempt.status == status)
    if cursor is not None:
        page = page.where(DeliveryAttempt.id < cursor)
    by_status = (
        select(DeliveryAttempt.status, func.count()).where(*scope).group_by(DeliveryAttempt.status)
    )
    return LogQueries(page.order_by(DeliveryAttempt.id.desc()).limit(limit + 1), by_status)


@router.get("/webhooks/{webhook_id}/logs", responses=error_responses(404, 422))
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
    """A webhook's delivery attempts, newest first, optionally filtered.

    `counts` holds how many attempts match the other filters, by status (whatever
    `status` and `cursor` say), so a client can show "All (n) / Errors (m)".
    """
    queries = log_queries(
        webhook_id,
        principal.account_id,
        status=status,
        event_type=event_type,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
    with get_sessions(request)() as session:
        load_webhook(session, principal, webhook_id)
        rows = list(session.scalars(queries.page))
        counted = {str(name): int(count) for name, count in session.execute(queries.counts)}
    more = len(rows) > limit
    rows = rows[:limit]
    succeeded = counted.pop("succeeded", 0)
    return LogList(
        items=[to_log_entry(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
        counts=LogCounts(succeeded=succeeded, failed=sum(counted.values())),
    )


@router.get("/logs/{log_id}", responses=error_responses(404, 422))
def get_log(log_id: str, request: Request, principal: CurrentPrincipal) -> LogDetail:
    """One attempt: the request sent (credentials redacted) and the response received."""
    with get_sessions(request)() as session:
        row = load_attempt(session, principal, log_id)
    return to_log_detail(row)


def to_log_detail(row: DeliveryAttempt) -> LogDetail:
    """The API view of an attempt row with its request and response."""
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
        # Rows written before triggers were checked may hold anything.
        trigger=cast(Trigger, row.trigger if row.trigger in TRIGGERS else "event"),
        status="succeeded" if row.status == "succeeded" else "failed",
        outcome=row.outcome,
        response_status=row.response_status,
        error=row.error,
        duration_ms=row.duration_ms,
        created_at=as_utc(row.created_at),
        next_retry_at=as_utc_or_none(row.next_retry_at),
    )
