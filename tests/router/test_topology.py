"""RabbitMQ topology as plain data (router/topology.py)."""

from __future__ import annotations

import pytest

from router.topology import (
    CONTROL_EXCHANGE,
    DEAD_EXCHANGE,
    INVALID_QUEUE,
    ORPHANED,
    RETURN_EXCHANGE,
    BindingSpec,
    QueueSpec,
    Topology,
    binding_keys,
    dead_letter_queue,
    delay_queue,
    delay_tiers_ms,
    queue_arguments,
    shared_topology,
    unrouted_exchange,
    webhook_queue,
    webhook_topology,
)

SCHEDULE_S = (5.0, 30.0, 120.0)


def queue_named(topology: Topology, name: str) -> QueueSpec:
    matches = [q for q in topology.queues if q.name == name]
    assert len(matches) == 1, f"expected one queue {name!r}, got {len(matches)}"
    return matches[0]


# --- naming -----------------------------------------------------------------------------


def test_queue_naming_helpers() -> None:
    # Given a webhook id, an exchange name and a delay
    # When the names are built
    # Then they follow the documented scheme
    assert webhook_queue("wh_1") == "webhook.wh_1"
    assert dead_letter_queue("wh_1") == "webhook.wh_1.dead"
    assert unrouted_exchange("events") == "events.unrouted"
    assert delay_queue(5000) == "router.delay.5000ms"


def test_queue_arguments_carry_the_queue_type() -> None:
    # Given each supported queue type
    # When the declaration arguments are built
    # Then they name the type
    assert queue_arguments("classic") == {"x-queue-type": "classic"}
    assert queue_arguments("quorum") == {"x-queue-type": "quorum"}


# --- binding_keys -----------------------------------------------------------------------


def test_binding_keys_cover_every_event_site_pair() -> None:
    # Given two events and two sites
    # When the binding keys are built
    keys = binding_keys("acme", ["delivery.done", "route.started"], ["paris", "lyon"])
    # Then there is one key per (site, event) pair, under the account
    assert keys == {
        "acme.paris.delivery.done",
        "acme.lyon.delivery.done",
        "acme.paris.route.started",
        "acme.lyon.route.started",
    }


def test_binding_keys_use_a_wildcard_when_no_site_is_given() -> None:
    # Given events and no sites (meaning every site)
    # When the binding keys are built
    keys = binding_keys("acme", ["delivery.done", "route.ended"], [])
    # Then the site word is `*` (exactly one word, as site ids have no dots)
    assert keys == {"acme.*.delivery.done", "acme.*.route.ended"}


def test_binding_keys_are_deduplicated() -> None:
    # Given repeated events and sites
    # When the binding keys are built
    keys = binding_keys("acme", ["delivery.done", "delivery.done"], ["paris", "paris"])
    # Then each key appears once
    assert keys == {"acme.paris.delivery.done"}


def test_binding_keys_without_events_bind_nothing() -> None:
    # Given no events
    # When the binding keys are built
    # Then there are none, whatever the sites
    assert binding_keys("acme", [], ["paris"]) == set()
    assert binding_keys("acme", [], []) == set()


def test_binding_keys_accept_generators() -> None:
    # Given events and sites as one-shot iterables
    events = (e for e in ["delivery.done"])
    sites = (s for s in ["paris", "lyon"])
    # When the binding keys are built
    keys = binding_keys("acme", events, sites)
    # Then nothing is lost by iterating them once
    assert keys == {"acme.paris.delivery.done", "acme.lyon.delivery.done"}


# --- delay_tiers_ms ---------------------------------------------------------------------


def test_delay_tiers_are_each_delay_and_its_jittered_neighbours() -> None:
    # Given a schedule and a jitter of 10 %
    # When the tiers are computed
    tiers = delay_tiers_ms((5.0, 30.0), 0.1)
    # Then each delay has a tier at -10 %, 0 and +10 %, sorted
    assert tiers == (4500, 5000, 5500, 27000, 30000, 33000)


def test_delay_tiers_without_jitter_are_the_schedule() -> None:
    # Given no jitter
    # When the tiers are computed
    tiers = delay_tiers_ms(SCHEDULE_S, 0.0)
    # Then there is exactly one tier per delay
    assert tiers == (5000, 30000, 120000)


def test_delay_tiers_merge_overlapping_neighbours() -> None:
    # Given delays whose jittered neighbours coincide (1 s + 100 % = 2 s - 0 %)
    # When the tiers are computed
    tiers = delay_tiers_ms((1.0, 2.0), 0.5)
    # Then the shared tier appears once
    assert tiers == (500, 1000, 1500, 2000, 3000)


def test_delay_tiers_repeated_delays_share_tiers() -> None:
    # Given a schedule repeating the same delay
    # When the tiers are computed
    tiers = delay_tiers_ms((60.0, 60.0, 60.0), 0.1)
    # Then the repeats add no queues
    assert tiers == (54000, 60000, 66000)


@pytest.mark.parametrize(
    ("schedule_s", "jitter", "expected"),
    [
        ((0.2,), 0.1, (180, 200, 220)),
        ((0.0123,), 0.0, (12,)),
        ((0.0127,), 0.0, (13,)),
        ((1.2344,), 0.0, (1234,)),
        ((1.2346,), 0.0, (1235,)),
    ],
)
def test_delay_tiers_round_to_whole_milliseconds(
    schedule_s: tuple[float, ...], jitter: float, expected: tuple[int, ...]
) -> None:
    # Given delays that are not whole milliseconds once jittered
    # When the tiers are computed
    tiers = delay_tiers_ms(schedule_s, jitter)
    # Then they are rounded to integers (RabbitMQ TTLs are integer milliseconds)
    assert tiers == expected
    assert all(isinstance(t, int) for t in tiers)


@pytest.mark.parametrize("schedule_s", [(0.0001,), (0.0004,), (0.0,)])
def test_delay_tiers_are_at_least_one_millisecond(schedule_s: tuple[float, ...]) -> None:
    # Given a delay that rounds to 0 ms
    # When the tiers are computed
    tiers = delay_tiers_ms(schedule_s, 0.5)
    # Then the smallest tier is 1 ms (a 0 ms TTL would expire at once, or never route)
    assert min(tiers) == 1
    assert all(t >= 1 for t in tiers)


def test_delay_tier_count_is_fixed_by_the_schedule() -> None:
    # Given the default schedule of nine delays, far enough apart not to overlap
    schedule_s = (5, 30, 120, 600, 1800, 7200, 21600, 43200, 86400)
    # When the tiers are computed with jitter
    tiers = delay_tiers_ms(schedule_s, 0.1)
    # Then there are exactly three per delay
    assert len(tiers) == 3 * len(schedule_s)


# --- shared_topology --------------------------------------------------------------------


def test_shared_topology_events_exchange_has_an_alternate_exchange() -> None:
    # Given the shared topology for exchange "events"
    topology = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    # When the events exchange is looked up
    exchanges = {e.name: e for e in topology.exchanges}
    # Then it is a topic exchange whose unroutable messages go to events.unrouted
    assert exchanges["events"].type == "topic"
    assert exchanges["events"].arguments == {"alternate-exchange": "events.unrouted"}
    assert exchanges["events.unrouted"].type == "fanout"


def test_shared_topology_declares_the_fixed_exchanges_and_queues() -> None:
    # Given the shared topology
    topology = shared_topology("events", SCHEDULE_S, 0.1, "quorum")
    # When its exchanges and queues are listed
    exchanges = {e.name: e for e in topology.exchanges}
    queues = {q.name for q in topology.queues}
    # Then the control, return, dead and orphaned plumbing is there
    assert exchanges[CONTROL_EXCHANGE].type == "fanout"
    assert exchanges[RETURN_EXCHANGE].type == "direct"
    assert exchanges[DEAD_EXCHANGE].type == "direct"
    assert exchanges[RETURN_EXCHANGE].arguments == {"alternate-exchange": ORPHANED}
    assert exchanges[DEAD_EXCHANGE].arguments == {"alternate-exchange": ORPHANED}
    assert {INVALID_QUEUE, ORPHANED, "events.unrouted"} <= queues
    # And every queue has the configured queue type
    assert all(q.arguments["x-queue-type"] == "quorum" for q in topology.queues)


def test_shared_topology_unrouted_queue_is_bounded() -> None:
    # Given the shared topology
    topology = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    # When the unrouted queue is looked up
    unrouted = queue_named(topology, "events.unrouted")
    # Then it has a maximum length and drops its oldest messages when full
    assert unrouted.arguments["x-max-length"] > 0
    assert unrouted.arguments["x-overflow"] == "drop-head"


def test_shared_topology_delay_queues_expire_into_router_return() -> None:
    # Given the shared topology
    topology = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    tiers = delay_tiers_ms(SCHEDULE_S, 0.1)
    # When each delay tier is looked up
    for delay_ms in tiers:
        queue = queue_named(topology, delay_queue(delay_ms))
        # Then it holds messages for exactly its delay and dead-letters to router.return
        assert queue.arguments["x-message-ttl"] == delay_ms
        assert queue.arguments["x-dead-letter-exchange"] == RETURN_EXCHANGE
        # Keeping the original routing key (the webhook queue name) on expiry
        assert "x-dead-letter-routing-key" not in queue.arguments
        # And it is fed by a fanout exchange of its own name
        assert BindingSpec(delay_queue(delay_ms), delay_queue(delay_ms), "") in topology.bindings


def test_quorum_delay_tiers_dead_letter_at_least_once() -> None:
    # Given the shared topology on quorum queues, and on classic ones
    quorum = shared_topology("events", SCHEDULE_S, 0.1, "quorum")
    classic = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    for delay_ms in delay_tiers_ms(SCHEDULE_S, 0.1):
        # When a delay tier is looked up
        tier = queue_named(quorum, delay_queue(delay_ms))
        # Then a quorum tier keeps each expired retry until its webhook queue confirms it
        # (RabbitMQ requires reject-publish overflow for that strategy)
        assert tier.arguments["x-dead-letter-strategy"] == "at-least-once"
        assert tier.arguments["x-overflow"] == "reject-publish"
        # And a classic tier, which has no such strategy, is declared without them
        plain = queue_named(classic, delay_queue(delay_ms))
        assert "x-dead-letter-strategy" not in plain.arguments
        assert "x-overflow" not in plain.arguments


def test_shared_topology_has_no_other_delay_queues() -> None:
    # Given the shared topology
    topology = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    # When the queues with a TTL are listed
    with_ttl = {q.name for q in topology.queues if "x-message-ttl" in q.arguments}
    # Then they are exactly the tiers
    assert with_ttl == {delay_queue(ms) for ms in delay_tiers_ms(SCHEDULE_S, 0.1)}


def test_shared_topology_size_depends_only_on_the_schedule() -> None:
    # Given two schedules, one longer
    short = shared_topology("events", (1.0,), 0.1, "classic")
    longer = shared_topology("events", (1.0, 10.0), 0.1, "classic")
    # When their queues are counted
    # Then three more queues (one delay, two neighbours) come with one more delay
    assert len(longer.queues) - len(short.queues) == 3
    assert len(longer.exchanges) - len(short.exchanges) == 3


def test_shared_topology_is_the_same_whatever_the_exchange_is_called() -> None:
    # Given two exchange names
    a = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    b = shared_topology("bus", SCHEDULE_S, 0.1, "classic")
    # When their queue counts are compared
    # Then they are equal, and the alternate exchange follows the name
    assert len(a.queues) == len(b.queues)
    assert {e.name: e for e in b.exchanges}["bus"].arguments == {
        "alternate-exchange": "bus.unrouted"
    }


def test_shared_topology_bindings_refer_to_declared_names() -> None:
    # Given the shared topology
    topology = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    exchanges = {e.name for e in topology.exchanges}
    queues = {q.name for q in topology.queues}
    # When its bindings are checked
    # Then each binds a declared queue to a declared exchange
    for binding in topology.bindings:
        assert binding.exchange in exchanges
        assert binding.queue in queues


# --- webhook_topology -------------------------------------------------------------------


def test_webhook_topology_declares_its_queue_and_dead_queue() -> None:
    # Given a webhook
    topology = webhook_topology("events", "wh_1", {"acme.paris.delivery.done"}, "quorum")
    # When its topology is built
    # Then it has its queue and dead-letter queue, of the configured type, and no exchange
    assert topology.exchanges == ()
    assert topology.queues == (
        QueueSpec("webhook.wh_1", {"x-queue-type": "quorum"}),
        QueueSpec("webhook.wh_1.dead", {"x-queue-type": "quorum"}),
    )


def test_webhook_topology_binds_events_return_and_dead() -> None:
    # Given a webhook with two binding keys
    keys = {"acme.paris.delivery.done", "acme.*.route.started"}
    # When its topology is built
    topology = webhook_topology("events", "wh_1", keys, "classic")
    # Then its queue is bound to each key on the events exchange, to router.return under
    # its own name, and its dead queue to router.dead under the dead queue's name
    assert set(topology.bindings) == {
        BindingSpec("events", "webhook.wh_1", "acme.paris.delivery.done"),
        BindingSpec("events", "webhook.wh_1", "acme.*.route.started"),
        BindingSpec(RETURN_EXCHANGE, "webhook.wh_1", "webhook.wh_1"),
        BindingSpec(DEAD_EXCHANGE, "webhook.wh_1.dead", "webhook.wh_1.dead"),
    }
    assert len(topology.bindings) == 4


def test_webhook_topology_without_keys_still_gets_retries_and_dead_letters() -> None:
    # Given a webhook subscribed to nothing
    # When its topology is built
    topology = webhook_topology("events", "wh_1", set(), "classic")
    # Then only the return and dead bindings exist
    assert topology.bindings == (
        BindingSpec(RETURN_EXCHANGE, "webhook.wh_1", "webhook.wh_1"),
        BindingSpec(DEAD_EXCHANGE, "webhook.wh_1.dead", "webhook.wh_1.dead"),
    )


def test_webhook_topology_is_deterministic() -> None:
    # Given the same keys in two orders
    keys = ["acme.b.delivery.done", "acme.a.delivery.done", "acme.c.delivery.done"]
    # When the topology is built from each
    first = webhook_topology("events", "wh_1", keys, "classic")
    second = webhook_topology("events", "wh_1", list(reversed(keys)), "classic")
    # Then the bindings come out in the same (sorted) order
    assert first == second
    assert [b.routing_key for b in first.bindings[:3]] == sorted(keys)


def test_webhook_topology_uses_the_configured_exchange() -> None:
    # Given a router on a renamed exchange
    # When a webhook topology is built
    topology = webhook_topology("bus", "wh_1", {"acme.paris.delivery.done"}, "classic")
    # Then its event bindings are on that exchange
    assert BindingSpec("bus", "webhook.wh_1", "acme.paris.delivery.done") in topology.bindings


def test_webhooks_add_no_delay_queues() -> None:
    # Given the shared topology and a hundred webhooks
    shared = shared_topology("events", SCHEDULE_S, 0.1, "classic")
    hooks = [
        webhook_topology("events", f"wh_{n}", {f"acme.*.delivery.done.{n}"}, "classic")
        for n in range(100)
    ]
    # When the queues they declare are counted
    hook_queues = [q for hook in hooks for q in hook.queues]
    # Then each webhook adds its two queues and none of them is a delay queue
    assert len(hook_queues) == 200
    assert not any("x-message-ttl" in q.arguments for q in hook_queues)
    assert not {q.name for q in hook_queues} & {q.name for q in shared.queues}
