"""``/v1/event-types`` and ``/v1/webhooks``: the catalog and the subscriptions.

Bindings change live: the broker is changed after the row is flushed and before it is
committed, so a broker failure rolls the row back, and workers are told to reload only
once the row is committed (they read it from the database).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Request, Response
from sqlalchemy import select

from config.app import get_admin, get_sessions, get_settings
from config.auth import AdminPrincipal, CurrentPrincipal
from config.errors import ApiError, error_responses
from config.rotation import SecretRotationRequest, previous_secret_expiry, rotate_secret
from config.schemas import (
    AuthBasicOut,
    AuthBearerOut,
    AuthHeaderOut,
    AuthNoneOut,
    Backlog,
    CircuitState,
    Cursor,
    EventTypeList,
    EventTypeOut,
    Limit,
    LogDetail,
    WebhookCreate,
    WebhookCreated,
    WebhookDetail,
    WebhookList,
    WebhookOut,
    WebhookRotated,
    WebhookUpdate,
    encode_cursor,
)
from config.scope import load_webhook
from config.sends import SendTestRequest, send_test_event
from consumers.signing import generate_secret
from router.broker import BrokerAdmin
from router.errors import BrokerUnavailable
from router.events import CATALOG, CATEGORIES
from router.models import Webhook, as_utc, as_utc_or_none, new_id, utcnow
from router.settings import Settings
from router.targets import check_target
from router.topology import Topology, binding_keys, webhook_queue, webhook_topology

logger = logging.getLogger(__name__)

# Every call checks its API key in the database, so any of them may answer 503.
router = APIRouter(prefix="/v1", responses=error_responses(401, 503))


@router.get("/event-types", tags=["event types"])
def list_event_types(principal: CurrentPrincipal) -> EventTypeList:
    """The catalog of event types a webhook may subscribe to."""
    return EventTypeList(
        items=[EventTypeOut(type=t.type, category=t.category, label=t.label) for t in CATALOG],
        categories=list(CATEGORIES),
    )


@router.get("/webhooks", tags=["webhooks"], responses=error_responses(422))
def list_webhooks(
    request: Request, principal: CurrentPrincipal, cursor: Cursor = None, limit: Limit = 50
) -> WebhookList:
    """The account's webhooks, oldest first."""
    query = select(Webhook).where(Webhook.account_id == principal.account_id)
    if cursor is not None:
        query = query.where(Webhook.id > cursor)
    with get_sessions(request)() as session:
        rows = list(session.scalars(query.order_by(Webhook.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return WebhookList(
        items=[to_webhook_out(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.post("/webhooks", status_code=201, tags=["webhooks"], responses=error_responses(403, 422))
def create_webhook(
    body: WebhookCreate, request: Request, principal: AdminPrincipal
) -> WebhookCreated:
    """Create a webhook: its queue and bindings exist when this returns."""
    settings, admin = get_settings(request), get_admin(request)
    _check_url(body.url, settings)
    _check_max_attempts(body.max_attempts, settings)
    webhook = Webhook(
        id=new_id("wh"),
        account_id=principal.account_id,
        name=body.name,
        url=body.url,
        auth_mode=body.auth.mode,
        auth_credentials=body.auth.credentials(),
        secret=generate_secret(),
        events=body.events,
        sites=body.sites,
        include_order=body.include_order,
        enabled=body.enabled,
        max_attempts=body.max_attempts,
    )
    with get_sessions(request)() as session:
        session.add(webhook)
        session.flush()
        admin.apply(_topology(settings, webhook.id, live_keys(webhook)))
        session.commit()
    _notify(admin, webhook.id)
    return WebhookCreated(**to_webhook_out(webhook).model_dump(), secret=webhook.secret)


@router.get("/webhooks/{webhook_id}", tags=["webhooks"], responses=error_responses(404, 422))
def get_webhook(webhook_id: str, request: Request, principal: CurrentPrincipal) -> WebhookDetail:
    """One webhook of the account, with the messages waiting in its queues."""
    with get_sessions(request)() as session:
        webhook = load_webhook(session, principal, webhook_id)
    return WebhookDetail(
        **to_webhook_out(webhook).model_dump(), backlog=_backlog(get_admin(request), webhook.id)
    )


@router.patch("/webhooks/{webhook_id}", tags=["webhooks"], responses=error_responses(403, 404, 422))
def update_webhook(
    webhook_id: str, body: WebhookUpdate, request: Request, principal: AdminPrincipal
) -> WebhookOut:
    """Change the fields given; bindings follow events, sites and enabled at once."""
    settings, admin = get_settings(request), get_admin(request)
    if "url" in body.model_fields_set and body.url is not None:
        _check_url(body.url, settings)
    _check_max_attempts(body.max_attempts, settings)
    with get_sessions(request)() as session:
        webhook = load_webhook(session, principal, webhook_id, for_update=True)
        old_keys = live_keys(webhook)
        _apply_changes(webhook, body)
        new_keys = live_keys(webhook)
        session.flush()
        queue = webhook_queue(webhook.id)
        unbind = [(settings.exchange, queue, key) for key in sorted(old_keys - new_keys)]
        admin.apply(_topology(settings, webhook.id, new_keys), unbind=unbind)
        session.commit()
    _notify(admin, webhook.id)
    return to_webhook_out(webhook)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    tags=["webhooks"],
    responses=error_responses(403, 404, 422),
)
def delete_webhook(webhook_id: str, request: Request, principal: AdminPrincipal) -> Response:
    """Delete a webhook, its queues and whatever was still waiting in them."""
    admin = get_admin(request)
    with get_sessions(request)() as session:
        webhook = load_webhook(session, principal, webhook_id, for_update=True)
        admin.delete_webhook(webhook.id)
        session.delete(webhook)
        session.commit()
    _notify(admin, webhook_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/test",
    status_code=201,
    tags=["webhooks"],
    responses=error_responses(403, 404, 422),
)
def send_test(
    webhook_id: str,
    request: Request,
    response: Response,
    principal: AdminPrincipal,
    body: Annotated[SendTestRequest | None, Body()] = None,
) -> LogDetail:
    """Send a sample event to the webhook now and return the attempt (201, also on failure).

    The event is marked as a test (id `evt_test_...`, `data.test: true`) and sent, signed
    and logged exactly as a worker would (`trigger: test`), enabled or not. The attempt's
    `status` says whether the endpoint accepted it; a failed test is never retried.
    """
    event_type = None if body is None else body.event_type
    detail = send_test_event(request, principal, webhook_id, event_type)
    response.headers["Location"] = f"/v1/logs/{detail.id}"
    return detail


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    tags=["webhooks"],
    responses=error_responses(403, 404, 422),
)
def rotate_webhook_secret(
    webhook_id: str,
    request: Request,
    principal: AdminPrincipal,
    body: Annotated[SecretRotationRequest | None, Body()] = None,
) -> WebhookRotated:
    """Replace the signing secret; the new one is shown in this response only.

    Deliveries are signed with both secrets until `previous_secret_expires_at` (after
    `overlap_s` seconds, default `ROUTER_SECRET_ROTATION_OVERLAP_S`), then with the new
    one alone. Rotating again within the overlap keeps only the secret just replaced.
    """
    settings = get_settings(request)
    overlap_s = settings.secret_rotation_overlap_s
    if body is not None and body.overlap_s is not None:
        overlap_s = body.overlap_s
    with get_sessions(request)() as session:
        webhook = load_webhook(session, principal, webhook_id, for_update=True)
        rotate_secret(webhook, overlap_s, utcnow())
        session.commit()
    _notify(get_admin(request), webhook.id)
    return WebhookRotated(**to_webhook_out(webhook).model_dump(), secret=webhook.secret)


def live_keys(webhook: Webhook) -> set[str]:
    """The routing keys the webhook's queue should be bound to (none while disabled)."""
    if not webhook.enabled:
        return set()
    return binding_keys(webhook.account_id, webhook.events, webhook.sites)


def to_webhook_out(webhook: Webhook) -> WebhookOut:
    """The API view of a webhook row: no credentials, no secret."""
    return WebhookOut(
        id=webhook.id,
        name=webhook.name,
        url=webhook.url,
        auth=_auth_out(webhook.auth_mode, webhook.auth_credentials),
        events=list(webhook.events),
        sites=list(webhook.sites),
        include_order=webhook.include_order,
        enabled=webhook.enabled,
        disabled_reason=webhook.disabled_reason,
        max_attempts=webhook.max_attempts,
        circuit=cast(CircuitState, webhook.circuit_state),
        circuit_retry_at=as_utc_or_none(webhook.circuit_retry_at),
        previous_secret_expires_at=previous_secret_expiry(webhook, utcnow()),
        created_at=as_utc(webhook.created_at),
        updated_at=as_utc(webhook.updated_at),
    )


def _auth_out(
    mode: str, credentials: dict[str, Any]
) -> AuthNoneOut | AuthBasicOut | AuthBearerOut | AuthHeaderOut:
    if mode == "basic":
        return AuthBasicOut(username=str(credentials.get("username", "")))
    if mode == "bearer":
        return AuthBearerOut()
    if mode == "header":
        return AuthHeaderOut(name=str(credentials.get("name", "")))
    return AuthNoneOut()


def _apply_changes(webhook: Webhook, body: WebhookUpdate) -> None:
    changes = body.model_fields_set
    if body.auth is not None:
        webhook.auth_mode = body.auth.mode
        webhook.auth_credentials = body.auth.credentials()
    for name in ("name", "url", "events", "sites", "include_order", "enabled"):
        value = getattr(body, name)
        if name in changes and value is not None:
            setattr(webhook, name, value)
    if "max_attempts" in changes:
        webhook.max_attempts = body.max_attempts
    if body.enabled:
        # An admin turning it (back) on vouches for the endpoint: forget why the router
        # turned it off and let deliveries resume without waiting for a probe.
        webhook.disabled_reason = None
        webhook.circuit_state = "closed"
        webhook.circuit_opened_at = None
        webhook.circuit_retry_at = None
        webhook.circuit_cooldown_s = 0.0
    if changes:
        webhook.updated_at = utcnow()


def _check_max_attempts(max_attempts: int | None, settings: Settings) -> None:
    # The upper bound is configuration, so it cannot live in the schema.
    if max_attempts is not None and max_attempts > settings.max_attempts:
        raise ApiError(
            422,
            f"must be between 1 and {settings.max_attempts} (the retry schedule's length + 1)",
            field="max_attempts",
        )


def _backlog(admin: BrokerAdmin, webhook_id: str) -> Backlog | None:
    # The backlog is a convenience: a broker outage must not make the webhook unreadable.
    try:
        pending, dead_letters = admin.queue_depths(webhook_id)
    except BrokerUnavailable as exc:
        logger.warning("could not read the backlog of webhook %s: %s", webhook_id, exc)
        return None
    return Backlog(pending=pending, dead_letters=dead_letters)


def _check_url(url: str, settings: Settings) -> None:
    try:
        check_target(url, settings.allow_private_targets)
    except ValueError as exc:
        raise ApiError(422, str(exc), field="url") from None


def _topology(settings: Settings, webhook_id: str, keys: set[str]) -> Topology:
    return webhook_topology(settings.exchange, webhook_id, keys, settings.queue_type)


def _notify(admin: BrokerAdmin, webhook_id: str) -> None:
    # The change is committed; a worker that misses this notice picks it up at its next
    # periodic reconcile, so a lost notice delays the change but never loses it.
    try:
        admin.notify(webhook_id)
    except BrokerUnavailable as exc:
        logger.warning("could not notify workers of webhook %s: %s", webhook_id, exc)
