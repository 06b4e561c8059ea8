"""Sample events for test sends (router/samples.py): every catalog type, marked as a test."""

from __future__ import annotations

import pytest

from router.events import CATALOG, parse_event, receiver_payload
from router.samples import sample_event


@pytest.mark.parametrize("event_type", [t.type for t in CATALOG])
def test_every_type_has_a_valid_marked_sample(event_type: str) -> None:
    # Given a catalog type
    # When its sample is built for acme at paris
    event = sample_event(event_type, "acme", "paris")
    # Then it is a valid envelope of that type, marked as a test in its id and data
    assert parse_event(event.to_json(), 256 * 1024, "acme.paris." + event_type) == event
    assert event.id.startswith("evt_test_")
    assert event.data["test"] is True
    # And it carries what receivers of that type read: an order, or a route
    assert "order" in event.data or event_type.startswith("route.")
    assert "route" in event.data


def test_samples_are_unique_and_summarised_like_real_events() -> None:
    # Given two samples of the same type
    first, second = (sample_event("delivery.done", "acme", "paris") for _ in range(2))
    # When they are compared and shaped for a receiver without include_order
    summary = receiver_payload(first, include_order=False)["data"]["order"]
    # Then their ids differ and the order summary keeps only the summary fields
    assert first.id != second.id
    assert summary["status"] == "done"
    assert set(summary) == {"id", "reference", "status", "site_id", "route_id", "planned_date"}


def test_unknown_type_is_refused() -> None:
    # Given a type outside the catalog
    # When a sample is asked for
    # Then it is refused
    with pytest.raises(ValueError, match="unknown event type"):
        sample_event("delivery.exploded", "acme", "paris")
