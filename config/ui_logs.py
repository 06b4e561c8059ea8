"""The logs pages: a webhook's attempts, one attempt in detail, and the replay buttons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from config.app import get_sessions
from config.errors import ApiError
from config.logs import get_log, list_logs
from config.replay import replay_dead_letters, replay_log
from config.schemas import WebhookOut
from config.scope import load_webhook
from config.ui_pages import PageRoute, page_cursor, redirect, render
from config.ui_session import AdminForm, User
from config.webhooks import get_webhook, to_webhook_out
from router.events import CATALOG, EVENT_TYPES

router = APIRouter(include_in_schema=False, route_class=PageRoute)

LOGS_PER_PAGE = 50
StatusFilter = Literal["failed", "succeeded"] | None
# "Newer" walks back through the cursors of the pages seen; past this many, it goes to
# the newest page instead (the API's cursor only walks towards older attempts).
_MAX_TRAIL = 50


@router.get("/webhooks/{webhook_id}/logs")
def logs_page(
    webhook_id: str,
    request: Request,
    user: User,
    status: str | None = None,
    event_type: str | None = None,
    cursor: str | None = None,
    trail: str | None = None,
) -> Response:
    """A webhook's attempts, newest first: errors only, one event type, page by page."""
    status_filter: StatusFilter = (
        "failed" if status == "failed" else "succeeded" if status == "succeeded" else None
    )
    type_filter = event_type or None
    if type_filter is not None and type_filter not in EVENT_TYPES:
        raise ApiError(400, f"unknown event type {type_filter!r}")
    webhook = get_webhook(webhook_id, request, user.principal)
    page = list_logs(
        webhook_id,
        request,
        user.principal,
        status=status_filter,
        event_type=type_filter,
        since=None,
        until=None,
        cursor=page_cursor(cursor),
        limit=LOGS_PER_PAGE,
    )
    filters = {"status": status_filter or "", "event_type": type_filter or ""}
    previous = trail.split(",") if trail else []
    older_url = newer_url = None
    if page.next_cursor is not None:
        older = {**filters, "cursor": page.next_cursor, "trail": [*previous, cursor or ""]}
        older_url = _page_url(webhook_id, older)
    if cursor:
        newer = {**filters, "cursor": previous[-1] if previous else "", "trail": previous[:-1]}
        newer_url = _page_url(webhook_id, newer)
    return render(
        request,
        "logs.html",
        user,
        webhook=webhook,
        logs=page.items,
        counts=page.counts,
        status_filter=status_filter,
        type_filter=type_filter,
        event_types=CATALOG,
        older_url=older_url,
        newer_url=newer_url,
    )


@router.get("/logs/{log_id}")
def log_page(log_id: str, request: Request, user: User) -> Response:
    """One attempt: the request sent (auth redacted) and the response received."""
    log = get_log(log_id, request, user.principal)
    webhook: WebhookOut | None = None
    try:
        with get_sessions(request)() as session:
            webhook = to_webhook_out(load_webhook(session, user.principal, log.webhook_id))
    except ApiError:
        pass  # the webhook was deleted since; its attempts are still worth reading
    return render(request, "log_detail.html", user, log=log, webhook=webhook)


@router.post("/logs/{log_id}/replay")
def replay_log_page(log_id: str, request: Request, user: User, form: AdminForm) -> Response:
    """Send the attempt's event again, then show the webhook's logs."""
    try:
        queued = replay_log(log_id, request, user.principal)
    except ApiError as exc:
        if exc.status_code != 409:
            raise
        return redirect(f"/ui/logs/{log_id}", str(exc.detail), "error")
    return redirect(
        f"/ui/webhooks/{queued.webhook_id}/logs",
        f"Event {queued.event_id} queued for delivery again.",
    )


@router.post("/webhooks/{webhook_id}/dead-letters/replay")
def replay_dead_letters_page(
    webhook_id: str, request: Request, user: User, form: AdminForm
) -> Response:
    """Move the webhook's dead letters back into delivery."""
    result = replay_dead_letters(webhook_id, request, user.principal, body=None)
    message = f"{result.replayed} dead letter(s) moved back into delivery"
    if result.remaining:
        message += f"; {result.remaining} still parked, replay again for the rest"
    return redirect(f"/ui/webhooks/{webhook_id}/logs", message + ".")


def _page_url(webhook_id: str, params: Mapping[str, str | Sequence[str]]) -> str:
    # An empty trail entry stands for the newest page, as does an empty trail.
    query = {
        name: value if isinstance(value, str) else ",".join(value[-_MAX_TRAIL:])
        for name, value in params.items()
    }
    return f"/ui/webhooks/{webhook_id}/logs?{urlencode({k: v for k, v in query.items() if v})}"
