"""Building events to publish: ids and timestamps (router/publisher.py, pure parts)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from router.errors import InvalidEvent
from router.events import DEFAULT_MAX_EVENT_BYTES, ID_PATTERN, parse_event
from router.publisher import new_event, new_event_id

ORDER = {"order": {"id": "ord_1", "status": "done"}}


def test_event_ids_are_prefixed_and_url_safe() -> None:
    # Given nothing
    # When an event id is made
    event_id = new_event_id()
    # Then it is evt_ and 22 URL-safe characters
    assert re.fullmatch(r"evt_[A-Za-z0-9_-]{22}", event_id)


def test_event_ids_are_unique() -> None:
    # Given nothing
    # When many ids are made
    ids = {new_event_id() for _ in range(10_000)}
    # Then none repeats
    assert len(ids) == 10_000


def test_new_event_fills_id_and_time() -> None:
    # Given a type, account, site and data
    before = datetime.now(UTC)
    # When an event is built without id or time
    event = new_event("delivery.done", "acme", "paris", ORDER)
    after = datetime.now(UTC)
    # Then it gets a fresh evt_ id and the current UTC time, written with Z
    assert event.id.startswith("evt_")
    assert event.occurred_at.endswith("Z")
    assert "+" not in event.occurred_at
    when = datetime.fromisoformat(event.occurred_at)
    assert when.utcoffset() == timedelta(0)
    assert before - timedelta(milliseconds=1) <= when <= after + timedelta(milliseconds=1)
    assert (event.type, event.account_id, event.site_id, event.data) == (
        "delivery.done",
        "acme",
        "paris",
        ORDER,
    )


def test_new_events_get_distinct_ids() -> None:
    # Given the same arguments twice
    # When two events are built
    first = new_event("delivery.done", "acme", "paris", ORDER)
    second = new_event("delivery.done", "acme", "paris", ORDER)
    # Then their ids differ
    assert first.id != second.id


@pytest.mark.parametrize(
    ("occurred_at", "expected"),
    [
        (datetime(2026, 11, 27, 18, 0, tzinfo=UTC), "2026-11-27T18:00:00Z"),
        (
            datetime(2026, 11, 27, 19, 0, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-27T18:00:00Z",
        ),
        (
            datetime(2026, 11, 27, 13, 30, 0, 250000, tzinfo=timezone(timedelta(hours=-4.5))),
            "2026-11-27T18:00:00.250000Z",
        ),
    ],
)
def test_new_event_writes_the_time_in_utc_with_z(occurred_at: datetime, expected: str) -> None:
    # Given an aware time in some zone
    # When an event is built at that time
    event = new_event("route.started", "acme", "paris", {}, occurred_at=occurred_at)
    # Then occurred_at is the same instant, in UTC, ending in Z
    assert event.occurred_at == expected


def test_new_event_keeps_a_given_id() -> None:
    # Given an id chosen by the caller (e.g. to make publishing idempotent)
    # When an event is built with it
    event = new_event("delivery.done", "acme", "paris", ORDER, event_id="evt_fixed")
    # Then it is kept
    assert event.id == "evt_fixed"


def test_new_event_passes_the_workers_validation() -> None:
    # Given an event built by the publisher library
    event = new_event("loading.done", "acme", "paris", ORDER)
    # When a worker parses what would be published, under its routing key
    parsed = parse_event(event.to_json(), 256 * 1024, event.routing_key)
    # Then it is the same event, and its id fits the id pattern
    assert parsed == event
    assert ID_PATTERN.match(event.id)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("delivery.exploded", "acme", "paris", {}), "unknown_type"),
        (("delivery.done", "ac.me", "paris", {}), "bad_field"),
        (("delivery.done", "acme", "", {}), "bad_field"),
        (("delivery.done", "acme", "p" * 65, {}), "bad_field"),
        (("delivery.done", "acme", "paris", ["not", "an", "object"]), "bad_field"),
    ],
)
def test_new_event_rejects_what_breaks_the_envelope(args: tuple[object, ...], reason: str) -> None:
    # Given arguments that break the envelope contract
    # When an event is built from them
    with pytest.raises(InvalidEvent) as caught:
        new_event(*args)  # type: ignore[arg-type]
    # Then it raises InvalidEvent with the parser's reason
    assert caught.value.reason == reason


def test_new_event_replaces_an_empty_id() -> None:
    # Given an explicit but empty id
    # When the event is built
    event = new_event("delivery.done", "acme", "paris", {}, event_id="")
    # Then the event gets a fresh id rather than an empty one
    assert event.id.startswith("evt_")


def test_new_event_rejects_an_overlong_id() -> None:
    # Given an id of 201 characters
    # When the event is built
    with pytest.raises(InvalidEvent) as caught:
        new_event("delivery.done", "acme", "paris", {}, event_id="e" * 201)
    # Then it is refused like the worker would
    assert caught.value.reason == "bad_field"


def test_new_event_enforces_the_workers_size_limit() -> None:
    # Given data that makes the envelope larger than the default limit
    data = {"blob": "x" * DEFAULT_MAX_EVENT_BYTES}
    # When the event is built / Then it is refused before reaching the bus
    with pytest.raises(InvalidEvent) as caught:
        new_event("delivery.done", "acme", "paris", data)
    assert caught.value.reason == "too_large"
