"""Pure parts of the pipeline (consumers/pipeline.py): what an attempt row records."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.pipeline import trigger_of


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "event"),
        ({"x-router-trigger": "manual"}, "manual"),
        ({"x-router-trigger": "test"}, "test"),
        ({"x-router-trigger": "x" * 100}, "event"),
        ({"x-router-trigger": 7}, "event"),
    ],
)
def test_trigger_is_a_known_one_or_event(headers: dict[str, Any], expected: str) -> None:
    # Given message headers as the router or an upstream may have set them
    # When the attempt's trigger is read from them
    # Then it is the router's own value, or "event" for anything else
    assert trigger_of(headers) == expected
