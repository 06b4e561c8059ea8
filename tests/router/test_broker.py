"""The AMQP URL as pika must read it (router/broker.py, pure part)."""

from __future__ import annotations

import pika
import pytest

from router.broker import pika_url


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@localhost:5672//", "/"),
        ("amqp://guest:guest@localhost:5672/", "/"),
        ("amqp://guest:guest@localhost:5672", "/"),
        ("amqp://guest:guest@localhost:5672/%2F", "/"),
        ("amqp://guest:guest@localhost:5672/router", "router"),
        ("amqp://guest:guest@localhost:5672/a%2Fb", "a/b"),
        ("amqp://guest:guest@localhost:5672/wr-test-1?heartbeat=5", "wr-test-1"),
    ],
)
def test_the_vhost_in_the_url_is_honoured(url: str, vhost: str) -> None:
    # Given an AMQP URL in the usual spelling
    # When it is converted for pika
    params = pika.URLParameters(pika_url(url))
    # Then pika connects to the vhost the URL names, credentials and query kept
    assert params.virtual_host == vhost
    assert params.credentials.username == "guest"
    assert params.host == "localhost"
