"""The event catalog, envelope validation and the receiver's body (router/events.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.errors import InvalidEvent
from router.events import (
    CATALOG,
    CATEGORIES,
    EVENT_TYPES,
    Event,
    parse_event,
    receiver_payload,
    routing_key,
)

# The catalog exactly as DESIGN.md fixes it: (category, type, label).
EXPECTED_CATALOG = [
    ("status", "delivery.created", "Delivery created"),
    ("status", "delivery.confirmed", "Delivery confirmed"),
    ("status", "delivery.pending", "Delivery pending"),
    ("status", "delivery.done", "Delivery done"),
    ("status", "delivery.cancelled", "Delivery cancelled"),
    ("status", "delivery.deleted", "Delivery deleted"),
    ("status", "delivery.confirmed_removed", "Confirmed status removed"),
    ("status", "delivery.pending_removed", "Pending status removed"),
    ("planning", "delivery.unassigned", "Delivery set to unassigned state"),
    (
        "planning",
        "delivery.rescheduled",
        "Delivery moved forward or delayed or assigned to another route",
    ),
    ("planning", "delivery.assigned", "Delivery assigned to a route"),
    ("planning", "delivery.assigned_in_progress", "Delivery assigned to a route in progress"),
    ("planning", "delivery.scheduled_from_basket", "Delivery scheduled from the basket"),
    ("planning", "delivery.moved_to_basket", "Delivery moved to the basket"),
    ("planning", "delivery.planning_date_changed", "Planning date changed"),
    ("proof_of_delivery", "delivery.photo_added", "Proof of delivery (photo) added"),
    ("proof_of_delivery", "delivery.signature_added", "Customer signature added"),
    ("other", "delivery.locked", "Delivery locked"),
    ("other", "delivery.updated", "Delivery updated"),
    ("route", "route.started", "Route started"),
    ("route", "route.ended", "Route ended"),
    ("notification", "notification.sent", "Notification sent"),
    ("pickup_delivery", "loading.done", "Loading done"),
    ("pickup_delivery", "unloading.done", "Unloading done"),
    ("pickup_delivery", "loading.cancelled", "Loading cancelled"),
    ("pickup_delivery", "unloading.cancelled", "Unloading cancelled"),
]

MAX_BYTES = 64 * 1024

FULL_ORDER = {
    "id": "ord_1",
    "reference": "REF-1",
    "status": "done",
    "site_id": "paris",
    "route_id": "rt_9",
    "planned_date": "2026-11-27",
    "customer": {"name": "Ada", "phone": "+33 1 23 45 67 89"},
    "address": "1 rue de Rivoli",
}


def envelope(**overrides: Any) -> dict[str, Any]:
    """A valid envelope, with some fields replaced."""
    raw: dict[str, Any] = {
        "id": "evt_2bQ",
        "type": "delivery.done",
        "occurred_at": "2026-11-27T18:00:00Z",
        "account_id": "acme",
        "site_id": "paris",
        "data": {"order": dict(FULL_ORDER), "route": {"id": "rt_9"}},
    }
    raw.update(overrides)
    return raw


def make_event(data: dict[str, Any]) -> Event:
    return Event(
        id="evt_1",
        type="delivery.done",
        occurred_at="2026-11-27T18:00:00Z",
        account_id="acme",
        site_id="paris",
        data=data,
    )


def reason_for(body: bytes, max_bytes: int = MAX_BYTES, key: str | None = None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body, max_bytes, key)
    return caught.value.reason


# --- catalog ---------------------------------------------------------------------------


def test_catalog_is_exactly_the_designed_table() -> None:
    # Given the table of DESIGN.md
    # When the catalog is read as (category, type, label) rows
    rows = [(t.category, t.type, t.label) for t in CATALOG]
    # Then it is the same table, in the same order
    assert rows == EXPECTED_CATALOG


def test_catalog_has_26_types_in_7_categories() -> None:
    # Given the catalog
    # When its types and categories are counted
    # Then there are 26 distinct types in 7 categories, in table order
    assert len(CATALOG) == 26
    assert {row[1] for row in EXPECTED_CATALOG} == EVENT_TYPES
    assert CATEGORIES == (
        "status",
        "planning",
        "proof_of_delivery",
        "other",
        "route",
        "notification",
        "pickup_delivery",
    )


# --- parse_event: accepted --------------------------------------------------------------


def test_parse_event_accepts_a_valid_envelope() -> None:
    # Given a valid envelope
    raw = envelope()
    # When it is parsed with its routing key
    event = parse_event(orjson.dumps(raw), MAX_BYTES, "acme.paris.delivery.done")
    # Then every field comes through unchanged
    assert event == Event(
        id="evt_2bQ",
        type="delivery.done",
        occurred_at="2026-11-27T18:00:00Z",
        account_id="acme",
        site_id="paris",
        data=raw["data"],
    )


@pytest.mark.parametrize("event_type", [row[1] for row in EXPECTED_CATALOG])
def test_parse_event_accepts_every_catalog_type(event_type: str) -> None:
    # Given an envelope of a catalog type
    body = orjson.dumps(envelope(type=event_type))
    # When it is parsed
    event = parse_event(body, MAX_BYTES)
    # Then its type is kept
    assert event.type == event_type


def test_parse_event_accepts_a_body_of_exactly_the_limit() -> None:
    # Given a body whose size is the limit itself
    body = orjson.dumps(envelope())
    # When it is parsed with max_bytes == its length
    event = parse_event(body, len(body))
    # Then it is accepted
    assert event.id == "evt_2bQ"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "a" * 64),
        ("site_id", "s" * 64),
        ("account_id", "Acme_Corp-01"),
        ("site_id", "x"),
    ],
)
def test_parse_event_accepts_ids_at_the_edge_of_the_pattern(field: str, value: str) -> None:
    # Given an id of 64 characters, or using every allowed character class
    body = orjson.dumps(envelope(**{field: value}))
    # When it is parsed
    event = parse_event(body, MAX_BYTES)
    # Then it is accepted unchanged
    assert getattr(event, field) == value


@pytest.mark.parametrize(
    "occurred_at", ["2026-11-27T18:00:00Z", "2026-11-27T19:00:00+01:00", "2026-11-27T18:00:00.123Z"]
)
def test_parse_event_accepts_iso_timestamps(occurred_at: str) -> None:
    # Given an ISO 8601 timestamp with a zone
    body = orjson.dumps(envelope(occurred_at=occurred_at))
    # When it is parsed
    event = parse_event(body, MAX_BYTES)
    # Then the timestamp is kept verbatim
    assert event.occurred_at == occurred_at


# --- parse_event: rejected --------------------------------------------------------------


def test_parse_event_rejects_a_body_over_the_limit() -> None:
    # Given a body one byte over the limit
    body = orjson.dumps(envelope())
    # When it is parsed
    # Then it is too large
    assert reason_for(body, max_bytes=len(body) - 1) == "too_large"


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"id": "x",}', b"\xff\xfe"])
def test_parse_event_rejects_what_is_not_json(body: bytes) -> None:
    # Given a body that is not JSON
    # When it is parsed
    # Then the reason is not_json
    assert reason_for(body) == "not_json"


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_parse_event_rejects_json_that_is_not_an_object(body: bytes) -> None:
    # Given JSON that is not an object
    # When it is parsed
    # Then the reason is not_object
    assert reason_for(body) == "not_object"


@pytest.mark.parametrize("field", ["id", "type", "occurred_at", "account_id", "site_id", "data"])
def test_parse_event_rejects_a_missing_field(field: str) -> None:
    # Given an envelope lacking one required field
    raw = envelope()
    del raw[field]
    # When it is parsed
    with pytest.raises(InvalidEvent) as caught:
        parse_event(orjson.dumps(raw), MAX_BYTES)
    # Then the reason is missing_field and the detail names it
    assert caught.value.reason == "missing_field"
    assert field in caught.value.detail


@pytest.mark.parametrize("field", ["id", "type", "occurred_at", "account_id", "site_id"])
@pytest.mark.parametrize("value", ["", None, 42, True, ["x"], {"x": 1}])
def test_parse_event_rejects_empty_or_non_string_fields(field: str, value: object) -> None:
    # Given a string field that is empty or of another JSON type
    body = orjson.dumps(envelope(**{field: value}))
    # When it is parsed
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body, MAX_BYTES)
    # Then the reason is bad_field and the detail names the field
    assert caught.value.reason == "bad_field"
    assert field in caught.value.detail


@pytest.mark.parametrize("field", ["account_id", "site_id"])
@pytest.mark.parametrize(
    "value",
    ["ac.me", ".", "a" * 65, "has space", "accént", "a/b", "a*", "a#"],
)
def test_parse_event_rejects_ids_outside_the_pattern(field: str, value: str) -> None:
    # Given an account or site id with a dot, too long, or with a character a routing
    # key cannot carry safely
    body = orjson.dumps(envelope(**{field: value}))
    # When it is parsed
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body, MAX_BYTES)
    # Then the reason is bad_field and the detail names the field
    assert caught.value.reason == "bad_field"
    assert field in caught.value.detail


@pytest.mark.parametrize("field", ["account_id", "site_id"])
def test_parse_event_rejects_ids_with_a_trailing_newline(field: str) -> None:
    # Given an id that is valid but for a trailing newline
    body = orjson.dumps(envelope(**{field: "acme\n"}))
    # When it is parsed
    # Then it is rejected like any other character outside [A-Za-z0-9_-]
    assert reason_for(body) == "bad_field"


def test_parse_event_rejects_an_event_id_over_200_characters() -> None:
    # Given an event id of 201 characters
    body = orjson.dumps(envelope(id="e" * 201))
    # When it is parsed
    # Then the reason is bad_field
    assert reason_for(body) == "bad_field"


@pytest.mark.parametrize("data", [None, [], ["order"], "text", 1, True])
def test_parse_event_rejects_data_that_is_not_an_object(data: object) -> None:
    # Given data that is not a JSON object
    body = orjson.dumps(envelope(data=data))
    # When it is parsed
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body, MAX_BYTES)
    # Then the reason is bad_field and the detail names data
    assert caught.value.reason == "bad_field"
    assert "data" in caught.value.detail


@pytest.mark.parametrize(
    "occurred_at", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-27T25:00:00Z", "27/11/2026"]
)
def test_parse_event_rejects_a_bad_occurred_at(occurred_at: str) -> None:
    # Given an occurred_at that is not an ISO 8601 timestamp
    body = orjson.dumps(envelope(occurred_at=occurred_at))
    # When it is parsed
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body, MAX_BYTES)
    # Then the reason is bad_field and the detail names occurred_at
    assert caught.value.reason == "bad_field"
    assert "occurred_at" in caught.value.detail


@pytest.mark.parametrize("event_type", ["delivery.exploded", "Delivery.Done", "route", "*"])
def test_parse_event_rejects_an_unknown_type(event_type: str) -> None:
    # Given a type outside the catalog
    body = orjson.dumps(envelope(type=event_type))
    # When it is parsed
    # Then the reason is unknown_type
    assert reason_for(body) == "unknown_type"


@pytest.mark.parametrize(
    "key",
    [
        "other.paris.delivery.done",
        "acme.lyon.delivery.done",
        "acme.paris.delivery.created",
        "acme.*.delivery.done",
        "",
    ],
)
def test_parse_event_rejects_a_routing_key_that_disagrees(key: str) -> None:
    # Given a valid envelope received under a key naming another account, site or type
    body = orjson.dumps(envelope())
    # When it is parsed with that routing key
    # Then the reason is routing_key_mismatch
    assert reason_for(body, key=key) == "routing_key_mismatch"


def test_invalid_event_message_carries_reason_and_detail() -> None:
    # Given a body that is not JSON
    # When it is parsed
    with pytest.raises(InvalidEvent) as caught:
        parse_event(b"nope", MAX_BYTES)
    # Then str() starts with the reason code
    assert str(caught.value).startswith("not_json: ")


# --- receiver_payload -------------------------------------------------------------------


def test_receiver_payload_has_the_standard_webhooks_shape() -> None:
    # Given an event
    event = make_event({"route": {"id": "rt_9"}})
    # When the body for a receiver is built
    payload = receiver_payload(event, include_order=False)
    # Then it has type, timestamp (= occurred_at), id, account, site and data
    assert payload == {
        "type": "delivery.done",
        "timestamp": "2026-11-27T18:00:00Z",
        "id": "evt_1",
        "account_id": "acme",
        "site_id": "paris",
        "data": {"route": {"id": "rt_9"}},
    }


def test_receiver_payload_summarises_the_order_by_default() -> None:
    # Given an event carrying a full work order
    event = make_event({"order": dict(FULL_ORDER), "route": {"id": "rt_9"}})
    # When the body is built without include_order
    payload = receiver_payload(event, include_order=False)
    # Then the order holds only the summary fields, and the rest of data is kept
    assert payload["data"] == {
        "order": {
            "id": "ord_1",
            "reference": "REF-1",
            "status": "done",
            "site_id": "paris",
            "route_id": "rt_9",
            "planned_date": "2026-11-27",
        },
        "route": {"id": "rt_9"},
    }


def test_receiver_payload_summary_keeps_only_the_fields_present() -> None:
    # Given an order with only some summary fields, and other details
    event = make_event({"order": {"id": "ord_1", "status": "done", "customer": "Ada"}})
    # When the body is built without include_order
    payload = receiver_payload(event, include_order=False)
    # Then the summary has exactly the summary fields that were present
    assert payload["data"] == {"order": {"id": "ord_1", "status": "done"}}


def test_receiver_payload_summary_does_not_change_the_event() -> None:
    # Given an event with a full order
    event = make_event({"order": dict(FULL_ORDER)})
    # When a summary body is built
    receiver_payload(event, include_order=False)
    # Then the event still holds the full order (another webhook may want it whole)
    assert event.data["order"] == FULL_ORDER


def test_receiver_payload_sends_the_whole_order_when_asked() -> None:
    # Given an event with a full order
    event = make_event({"order": dict(FULL_ORDER), "route": {"id": "rt_9"}})
    # When the body is built with include_order
    payload = receiver_payload(event, include_order=True)
    # Then data is sent whole
    assert payload["data"] == {"order": FULL_ORDER, "route": {"id": "rt_9"}}


@pytest.mark.parametrize("include_order", [False, True])
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"route": {"id": "rt_9", "driver": "Bob"}},
        {"order": None},
        {"order": "ord_1"},
        {"notification": {"channel": "sms"}},
    ],
)
def test_receiver_payload_leaves_data_without_an_order_untouched(
    data: dict[str, Any], include_order: bool
) -> None:
    # Given data with no order object
    event = make_event(data)
    # When the body is built
    payload = receiver_payload(event, include_order=include_order)
    # Then data is passed on as it is
    assert payload["data"] == data


# --- routing keys -----------------------------------------------------------------------


def test_routing_key_is_account_site_type() -> None:
    # Given an account, a site and a type
    # When the routing key is built
    key = routing_key("acme", "paris", "delivery.done")
    # Then it is {account}.{site}.{type}
    assert key == "acme.paris.delivery.done"


def test_event_routing_key_and_json_round_trip() -> None:
    # Given a parsed event
    body = orjson.dumps(envelope(site_id="lyon", type="route.started"))
    event = parse_event(body, MAX_BYTES)
    # When its routing key and JSON are taken
    # Then the key names its account, site and type, and the JSON parses back to it
    assert event.routing_key == "acme.lyon.route.started"
    assert parse_event(event.to_json(), MAX_BYTES, event.routing_key) == event


@pytest.mark.parametrize("occurred_at", ["2026-11-27T18:00:00", "2026-11-27"])
def test_parse_event_rejects_a_timestamp_without_time_or_zone(occurred_at: str) -> None:
    # Given an envelope whose occurred_at lacks a time zone or a time
    body = orjson.dumps(envelope(occurred_at=occurred_at))
    # When it is parsed / Then it is refused: receivers would get an ambiguous timestamp
    assert reason_for(body) == "bad_field"


def test_event_to_json_refuses_data_that_is_not_json() -> None:
    # Given an event whose data holds an object JSON cannot express
    event = make_event({"when": object()})
    # When it is serialised / Then the error is the router's, with a reason
    with pytest.raises(InvalidEvent) as caught:
        event.to_json()
    assert caught.value.reason == "bad_field"
