"""Publisher benchmark: events/s of the upstream publisher library, with confirms.

Publishes N events to the ``events`` exchange of a private vhost where M webhook queues
are bound (so every event is routed and persisted M times), first one confirm at a time
(``Publisher.publish``), then pipelined (``Publisher.publish_many``). Prints both rates
and a JSON line. The vhost is removed at the end.

    .venv/bin/python bench/publisher.py --events 50000 --webhooks 4
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from harness import apply_queue_policy, rabbitmqctl

from router.broker import BrokerAdmin
from router.events import Event
from router.publisher import Publisher, new_event
from router.topology import binding_keys, shared_topology, webhook_topology


def events(count: int) -> Iterator[Event]:
    order = {"id": "ord", "reference": "R", "status": "done", "notes": "x" * 900}
    for n in range(count):
        yield new_event("delivery.done", "bench", "site-1", {"order": {**order, "n": n}})


def run(amqp_url: str, count: int, one_by_one: int, webhooks: int) -> dict[str, Any]:
    admin = BrokerAdmin(amqp_url)
    admin.apply(shared_topology("events", (5.0,), 0.0, "classic"))
    for n in range(webhooks):
        keys = binding_keys("bench", ["delivery.done"], [])
        admin.apply(webhook_topology("events", f"bench{n}", keys, "classic"))
    with Publisher(amqp_url) as publisher:
        started = time.perf_counter()
        for event in events(one_by_one):
            publisher.publish(event)
        single_s = time.perf_counter() - started
        started = time.perf_counter()
        confirmed = publisher.publish_many(events(count))
        pipelined_s = time.perf_counter() - started
    return {
        "events": count,
        "webhooks": webhooks,
        "one_by_one_events_per_s": round(one_by_one / single_s),
        "pipelined_events_per_s": round(confirmed / pipelined_s),
        "pipelined_s": round(pipelined_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--one-by-one", type=int, default=2_000)
    parser.add_argument("--webhooks", type=int, default=4)
    args = parser.parse_args()
    vhost = f"wr-bench-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        apply_queue_policy(vhost)
        result = run(
            f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            args.events,
            args.one_by_one,
            args.webhooks,
        )
    finally:
        rabbitmqctl("delete_vhost", vhost)
    print(
        f"publisher: {result['events']} events to {result['webhooks']} bound queues\n"
        f"  one confirm at a time  {result['one_by_one_events_per_s']:,} events/s\n"
        f"  pipelined confirms     {result['pipelined_events_per_s']:,} events/s "
        f"({result['pipelined_s']} s)"
    )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
