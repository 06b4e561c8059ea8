"""BrokerAdmin.apply against the real broker: pipelined declares, refusals surfaced."""

from __future__ import annotations

import pika
import pytest

from router.broker import BrokerAdmin
from router.errors import BrokerUnavailable
from router.settings import Settings
from router.topology import Topology, binding_keys, webhook_queue, webhook_topology
from tests.helpers import declare_shared

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _routed_to(settings: Settings, routing_key: str, queues: list[str]) -> dict[str, int]:
    """Publish one message under ``routing_key``; ready messages in each queue afterwards."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url.get_secret_value()))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(settings.exchange, routing_key, b"{}")
    depths = {q: channel.queue_declare(q, passive=True).method.message_count for q in queues}
    connection.close()
    return depths


def test_apply_declares_every_queue_and_binding_of_many_webhooks(settings: Settings) -> None:
    # Given 300 webhooks, each subscribed to its own site, merged into one topology
    admin = BrokerAdmin(settings.amqp_url.get_secret_value())
    ids = [f"wh{n:03d}" for n in range(300)]
    topology = Topology.merge(
        webhook_topology(
            settings.exchange,
            webhook_id,
            binding_keys("acme", ["delivery.done", "route.started"], [webhook_id]),
            settings.queue_type,
        )
        for webhook_id in ids
    )
    declare_shared(settings)
    # When it is applied (sent without waiting for each reply)
    admin.apply(topology)
    # Then every queue exists and the last webhook's binding routes to it alone
    queues = [webhook_queue(i) for i in ids]
    depths = _routed_to(settings, "acme.wh299.delivery.done", queues)
    assert depths[webhook_queue("wh299")] == 1
    assert sum(depths.values()) == 1


def test_apply_raises_when_the_broker_refuses_a_declare(settings: Settings) -> None:
    # Given a webhook queue that exists as a classic queue
    declare_shared(settings)
    admin = BrokerAdmin(settings.amqp_url.get_secret_value())
    admin.apply(webhook_topology(settings.exchange, "wh1", (), "classic"))
    # When the same webhook is applied as a quorum queue, after other pipelined declares
    # Then the broker's refusal surfaces, naming the argument
    with pytest.raises(BrokerUnavailable, match="x-queue-type"):
        admin.apply(
            Topology.merge(
                [
                    webhook_topology(settings.exchange, "wh2", (), "classic"),
                    webhook_topology(settings.exchange, "wh1", (), "quorum"),
                ]
            )
        )


def test_apply_unbinds_what_it_is_told(settings: Settings) -> None:
    # Given a webhook bound to delivery.done at one site
    declare_shared(settings)
    admin = BrokerAdmin(settings.amqp_url.get_secret_value())
    keys = binding_keys("acme", ["delivery.done"], ["paris"])
    admin.apply(webhook_topology(settings.exchange, "wh1", keys, settings.queue_type))
    (key,) = keys
    # When the binding is removed
    admin.apply(
        webhook_topology(settings.exchange, "wh1", (), settings.queue_type),
        unbind=[(settings.exchange, webhook_queue("wh1"), key)],
    )
    # Then an event under that key no longer reaches the queue
    assert _routed_to(settings, key, [webhook_queue("wh1")]) == {webhook_queue("wh1"): 0}
