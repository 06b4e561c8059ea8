"""The event catalog, the envelope upstream publishes, and the body a receiver gets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from router.errors import InvalidEvent


@dataclass(frozen=True, slots=True)
class EventType:
    """One entry of the catalog: its name, its category and a human label."""

    type: str
    category: str
    label: str


CATALOG: tuple[EventType, ...] = (
    EventType("delivery.created", "status", "Delivery created"),
    EventType("delivery.confirmed", "status", "Delivery confirmed"),
    EventType("delivery.pending", "status", "Delivery pending"),
    EventType("delivery.done", "status", "Delivery done"),
    EventType("delivery.cancelled", "status", "Delivery cancelled"),
    EventType("delivery.deleted", "status", "Delivery deleted"),
    EventType("delivery.confirmed_removed", "status", "Confirmed status removed"),
    EventType("delivery.pending_removed", "status", "Pending status removed"),
    EventType("delivery.unassigned", "planning", "Delivery set to unassigned state"),
    EventType(
        "delivery.rescheduled",
        "planning",
        "Delivery moved forward or delayed or assigned to another route",
    ),
    EventType("delivery.assigned", "planning", "Delivery assigned to a route"),
    EventType(
        "delivery.assigned_in_progress", "planning", "Delivery assigned to a route in progress"
    ),
    EventType("delivery.scheduled_from_basket", "planning", "Delivery scheduled from the basket"),
    EventType("delivery.moved_to_basket", "planning", "Delivery moved to the basket"),
    EventType("delivery.planning_date_changed", "planning", "Planning date changed"),
    EventType("delivery.photo_added", "proof_of_delivery", "Proof of delivery (photo) added"),
    EventType("delivery.signature_added", "proof_of_delivery", "Customer signature added"),
    EventType("delivery.locked", "other", "Delivery locked"),
    EventType("delivery.updated", "other", "Delivery updated"),
    EventType("route.started", "route", "Route started"),
    EventType("route.ended", "route", "Route ended"),
    EventType("notification.sent", "notification", "Notification sent"),
    EventType("loading.done", "pickup_delivery", "Loading done"),
    EventType("unloading.done", "pickup_delivery", "Unloading done"),
    EventType("loading.cancelled", "pickup_delivery", "Loading cancelled"),
    EventType("unloading.cancelled", "pickup_delivery", "Unloading cancelled"),
)

EVENT_TYPES: frozenset[str] = frozenset(t.type for t in CATALOG)
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(t.category for t in CATALOG))

# Ids become words of an AMQP topic routing key, so they may not contain dots.
# \Z, not $: "$" also matches before a trailing newline.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
_ORDER_SUMMARY_FIELDS = ("id", "reference", "status", "site_id", "route_id", "planned_date")
_REQUIRED = ("id", "type", "occurred_at", "account_id", "site_id", "data")


@dataclass(frozen=True, slots=True)
class Event:
    """A validated envelope, as published by upstream on the ``events`` exchange."""

    id: str
    type: str
    occurred_at: str
    account_id: str
    site_id: str
    data: dict[str, Any]

    @property
    def routing_key(self) -> str:
        """``{account_id}.{site_id}.{type}``: what the event is published under."""
        return routing_key(self.account_id, self.site_id, self.type)

    def to_json(self) -> bytes:
        """The envelope as published; InvalidEvent when ``data`` is not JSON-serialisable."""
        try:
            return self._dumps()
        except orjson.JSONEncodeError as exc:
            raise InvalidEvent("bad_field", f"data is not JSON-serialisable: {exc}") from None

    def _dumps(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "type": self.type,
                "occurred_at": self.occurred_at,
                "account_id": self.account_id,
                "site_id": self.site_id,
                "data": self.data,
            }
        )


def routing_key(account_id: str, site_id: str, event_type: str) -> str:
    """The routing key an event is published under."""
    return f"{account_id}.{site_id}.{event_type}"


def parse_event(body: bytes, max_bytes: int, routing_key: str | None = None) -> Event:
    """Validate an envelope; raise InvalidEvent with a short reason code otherwise.

    When ``routing_key`` is given it must match the envelope, or a message could reach
    subscribers of a type or site it is not about.
    """
    if len(body) > max_bytes:
        raise InvalidEvent("too_large", f"{len(body)} bytes, limit is {max_bytes}")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", str(exc)) from None
    if not isinstance(raw, dict):
        raise InvalidEvent("not_object", "the envelope must be a JSON object")
    missing = [name for name in _REQUIRED if name not in raw]
    if missing:
        raise InvalidEvent("missing_field", "missing " + ", ".join(missing))
    for name in ("id", "type", "occurred_at", "account_id", "site_id"):
        if not isinstance(raw[name], str) or not raw[name]:
            raise InvalidEvent("bad_field", f"{name} must be a non-empty string")
    if raw["type"] not in EVENT_TYPES:
        raise InvalidEvent("unknown_type", f"unknown event type {raw['type']!r}")
    for name in ("account_id", "site_id"):
        if not ID_PATTERN.match(raw[name]):
            raise InvalidEvent("bad_field", f"{name} must be 1-64 letters, digits, _ or -")
    if len(raw["id"]) > 200:
        raise InvalidEvent("bad_field", "id must be at most 200 characters")
    if not isinstance(raw["data"], dict):
        raise InvalidEvent("bad_field", "data must be a JSON object")
    try:
        occurred_at = datetime.fromisoformat(raw["occurred_at"])
    except ValueError:
        occurred_at = None
    if occurred_at is None or occurred_at.tzinfo is None or "T" not in raw["occurred_at"]:
        raise InvalidEvent(
            "bad_field", "occurred_at must be an ISO 8601 date-time with a time zone"
        )
    event = Event(
        id=raw["id"],
        type=raw["type"],
        occurred_at=raw["occurred_at"],
        account_id=raw["account_id"],
        site_id=raw["site_id"],
        data=raw["data"],
    )
    if routing_key is not None and routing_key != event.routing_key:
        raise InvalidEvent(
            "routing_key_mismatch", f"routing key {routing_key!r} != {event.routing_key!r}"
        )
    return event


def receiver_payload(event: Event, include_order: bool) -> dict[str, Any]:
    """The body a receiver gets (Standard Webhooks shape).

    Without ``include_order`` the work order is cut down to a summary, so receivers that
    only route on status never see customer details they did not ask for.
    """
    data = event.data
    order = data.get("order")
    if not include_order and isinstance(order, dict):
        summary = {key: order[key] for key in _ORDER_SUMMARY_FIELDS if key in order}
        data = {**data, "order": summary}
    return {
        "type": event.type,
        "timestamp": event.occurred_at,
        "id": event.id,
        "account_id": event.account_id,
        "site_id": event.site_id,
        "data": data,
    }
