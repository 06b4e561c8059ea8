"""The webhooks pages: the list, the "+" and edit form, delete and send test.

Pages call the JSON API's own functions with the signed-in key's principal, so both
share every rule, check and side effect.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import Response

from config.app import get_sessions
from config.auth import Principal
from config.errors import ApiError
from config.schemas import WebhookCreate, WebhookOut, WebhookUpdate
from config.scope import load_webhook
from config.sends import send_test_event
from config.ui_forms import (
    AUTH_MODE_TITLES,
    EVENT_GROUPS,
    FORM_WIDE,
    FieldErrors,
    WebhookForm,
    api_error,
    create_payload,
    from_webhook,
    read_form,
    update_payload,
    validate,
)
from config.ui_pages import WEBHOOKS_PATH, PageRoute, page_cursor, redirect, render
from config.ui_session import AdminForm, PageUser, User
from config.webhooks import (
    create_webhook,
    delete_webhook,
    list_webhooks,
    to_webhook_out,
    update_webhook,
)
from router.errors import BrokerUnavailable
from router.models import DeliveryAttempt

router = APIRouter(include_in_schema=False, route_class=PageRoute)

WEBHOOKS_PER_PAGE = 100
_BROKER_DOWN = "message broker unavailable: nothing was saved, try again"


@router.get("/webhooks")
def webhooks_page(request: Request, user: User, cursor: str | None = None) -> Response:
    """Every webhook of the account, with its circuit and its last delivery's outcome."""
    page = list_webhooks(
        request=request,
        principal=user.principal,
        cursor=page_cursor(cursor),
        limit=WEBHOOKS_PER_PAGE,
    )
    return render(
        request,
        "webhooks.html",
        user,
        webhooks=page.items,
        last_status=last_statuses(request, user.principal, [w.id for w in page.items]),
        next_cursor=page.next_cursor,
    )


def last_statuses(request: Request, principal: Principal, webhook_ids: list[str]) -> dict[str, str]:
    """The status of each webhook's newest attempt, in one query (absent: never delivered).

    Attempt ids sort by creation time, so the newest is the greatest id of each webhook:
    an index-only lookup on (webhook_id, id) per webhook.
    """
    if not webhook_ids:
        return {}
    newest = (
        select(func.max(DeliveryAttempt.id))
        .where(
            DeliveryAttempt.webhook_id.in_(webhook_ids),
            DeliveryAttempt.account_id == principal.account_id,
        )
        .group_by(DeliveryAttempt.webhook_id)
    )
    query = select(DeliveryAttempt.webhook_id, DeliveryAttempt.status).where(
        DeliveryAttempt.id.in_(newest)
    )
    with get_sessions(request)() as session:
        return {webhook_id: status for webhook_id, status in session.execute(query)}


@router.get("/webhooks/new")
def new_webhook_page(request: Request, user: User) -> Response:
    """The empty "+" form."""
    _require_admin(user)
    return _webhook_form(request, user, WebhookForm(), {}, None)


@router.post("/webhooks/new")
def create_webhook_page(request: Request, user: User, form: AdminForm) -> Response:
    """Create the webhook, then show its signing secret, this once."""
    fields = read_form(form)
    body, errors = validate(WebhookCreate, create_payload(fields))
    if body is not None:
        try:
            created = create_webhook(body=body, request=request, principal=user.principal)
        except ApiError as exc:
            errors = _inline(exc)
        except BrokerUnavailable:
            errors = {FORM_WIDE: _BROKER_DOWN}
        else:
            return render(request, "webhook_created.html", user, webhook=created)
    return _webhook_form(request, user, fields, errors, None, status_code=422)


@router.get("/webhooks/{webhook_id}/edit")
def edit_webhook_page(webhook_id: str, request: Request, user: User) -> Response:
    """The form prefilled with the webhook (read-only for viewers); secrets stay blank."""
    webhook = _load(request, user, webhook_id)
    return _webhook_form(request, user, from_webhook(webhook), {}, webhook)


@router.post("/webhooks/{webhook_id}/edit")
def update_webhook_page(webhook_id: str, request: Request, user: User, form: AdminForm) -> Response:
    """Save what the form changed; a blank secret keeps the stored one."""
    with get_sessions(request)() as session:
        row = load_webhook(session, user.principal, webhook_id)
    current = to_webhook_out(row)
    fields = read_form(form)
    payload = update_payload(fields, current, row.auth_mode, row.auth_credentials)
    body, errors = validate(WebhookUpdate, payload)
    if body is not None:
        try:
            saved = update_webhook(
                webhook_id=webhook_id, body=body, request=request, principal=user.principal
            )
        except ApiError as exc:
            errors = _inline(exc)
        except BrokerUnavailable:
            errors = {FORM_WIDE: _BROKER_DOWN}
        else:
            return redirect(WEBHOOKS_PATH, f"Saved webhook “{saved.name}”.")
    return _webhook_form(request, user, fields, errors, current, status_code=422)


@router.get("/webhooks/{webhook_id}/delete")
def delete_webhook_page(webhook_id: str, request: Request, user: User) -> Response:
    """Ask before deleting: the queue and what waits in it go too."""
    _require_admin(user)
    return render(request, "webhook_delete.html", user, webhook=_load(request, user, webhook_id))


@router.post("/webhooks/{webhook_id}/delete")
def delete_webhook_confirmed(
    webhook_id: str, request: Request, user: User, form: AdminForm
) -> Response:
    """Delete the webhook, its queues and their messages."""
    webhook = _load(request, user, webhook_id)
    delete_webhook(webhook_id=webhook_id, request=request, principal=user.principal)
    return redirect(WEBHOOKS_PATH, f"Deleted webhook “{webhook.name}”.")


@router.post("/webhooks/{webhook_id}/test")
def send_test_page(webhook_id: str, request: Request, user: User, form: AdminForm) -> Response:
    """Send a test event now and show the attempt it made."""
    attempt = send_test_event(request, user.principal, webhook_id, event_type=None)
    if attempt.status == "succeeded":
        return redirect(f"/ui/logs/{attempt.id}", "Test event delivered.")
    return redirect(f"/ui/logs/{attempt.id}", "Test event sent: the endpoint failed.", "error")


def _webhook_form(
    request: Request,
    user: PageUser,
    form: WebhookForm,
    errors: FieldErrors,
    webhook: WebhookOut | None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "webhook_form.html",
        user,
        status_code=status_code,
        form=form,
        errors=errors,
        webhook=webhook,
        groups=EVENT_GROUPS,
        auth_modes=AUTH_MODE_TITLES,
        read_only=not user.is_admin,
    )


def _load(request: Request, user: PageUser, webhook_id: str) -> WebhookOut:
    with get_sessions(request)() as session:
        return to_webhook_out(load_webhook(session, user.principal, webhook_id))


def _inline(exc: ApiError) -> FieldErrors:
    # Bad input belongs next to its field; anything else (404, 403) is a whole-page error.
    if exc.status_code != 422:
        raise exc
    return api_error(exc)


def _require_admin(user: PageUser) -> None:
    if not user.is_admin:
        raise ApiError(403, "this API key is read-only (viewer); sign in with an admin key")
