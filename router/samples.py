"""Sample events of every catalog type, for test sends: realistic, and marked as tests.

A receiver can tell a sample from a real event two ways: its id starts with ``evt_test_``
and its ``data.test`` is ``true``. The rest has the shape real events of that type have,
so a receiver's parsing is exercised as it will be in production.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from router.events import CATALOG, Event
from router.publisher import new_event

TEST_EVENT_PREFIX = "evt_test_"
DEFAULT_SAMPLE_SITE = "test-site"
_CATEGORY = {t.type: t.category for t in CATALOG}
# The work order status after an event of this type (when it changes the status).
_ORDER_STATUS = {
    "delivery.created": "created",
    "delivery.confirmed": "confirmed",
    "delivery.pending": "pending",
    "delivery.done": "done",
    "delivery.cancelled": "cancelled",
    "delivery.deleted": "deleted",
    "delivery.confirmed_removed": "created",
    "delivery.pending_removed": "confirmed",
    "delivery.unassigned": "confirmed",
}


def new_test_event_id() -> str:
    """A fresh id that marks the event as a test: ``evt_test_`` and 22 random characters."""
    return TEST_EVENT_PREFIX + secrets.token_urlsafe(16)


def sample_event(
    event_type: str, account_id: str, site_id: str, now: datetime | None = None
) -> Event:
    """A validated sample event of ``event_type``; ValueError for a type not in the catalog."""
    category = _CATEGORY.get(event_type)
    if category is None:
        raise ValueError(f"unknown event type {event_type!r}")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    data: dict[str, Any] = {"test": True}
    if category == "route":
        data["route"] = _route(site_id, when, ended=event_type == "route.ended")
    else:
        data["order"] = _order(event_type, site_id, when)
        data["route"] = {"id": "rt_test_1", "name": "Test route"}
    if event_type == "delivery.photo_added":
        data["photo"] = {"id": "pht_test_1", "url": "https://example.com/pod/test.jpg"}
    elif event_type == "delivery.signature_added":
        data["signature"] = {"id": "sig_test_1", "signed_by": "Ada Lovelace"}
    elif event_type == "notification.sent":
        data["notification"] = {"id": "ntf_test_1", "channel": "sms", "template": "eta"}
    return new_event(event_type, account_id, site_id, data, new_test_event_id(), when)


def _order(event_type: str, site_id: str, when: datetime) -> dict[str, Any]:
    return {
        "id": "ord_test_1",
        "reference": "TEST-0001",
        "status": _ORDER_STATUS.get(event_type, "confirmed"),
        "site_id": site_id,
        "route_id": "rt_test_1",
        "planned_date": when.date().isoformat(),
        "customer": {"name": "Ada Lovelace", "phone": "+33 1 23 45 67 89"},
        "address": {"line1": "1 rue de la Paix", "city": "Paris", "postcode": "75002"},
    }


def _route(site_id: str, when: datetime, ended: bool) -> dict[str, Any]:
    stamp = when.isoformat().replace("+00:00", "Z")
    route: dict[str, Any] = {
        "id": "rt_test_1",
        "name": "Test route",
        "site_id": site_id,
        "driver": {"id": "drv_test_1", "name": "Test driver"},
        "stops": 12,
        "started_at": stamp,
    }
    if ended:
        route["ended_at"] = stamp
    return route
