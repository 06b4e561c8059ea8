"""The events benchmarks publish: a realistic work order, published with ``Publisher``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from router.events import Event
from router.publisher import Publisher, new_event


def work_order(index: int, site: str = "site-1") -> dict[str, Any]:
    """A realistic work order, about 1 KB of JSON."""
    return {
        "id": f"ord_{index:08d}",
        "reference": f"WO-2026-{index:06d}",
        "status": "done",
        "site_id": site,
        "route_id": f"rte_{index // 40:05d}",
        "planned_date": "2026-11-27",
        "time_window": {"start": "2026-11-27T08:00:00Z", "end": "2026-11-27T12:00:00Z"},
        "done_at": "2026-11-27T10:42:17Z",
        "customer": {
            "id": f"cus_{index % 997:05d}",
            "name": "Boulangerie Martin & Fils",
            "phone": "+33 1 42 68 53 00",
            "email": "commandes@boulangerie-martin.example",
        },
        "address": {
            "line1": "18 rue du Faubourg Saint-Antoine",
            "line2": "Bâtiment B, 2e étage",
            "postcode": "75012",
            "city": "Paris",
            "country": "FR",
            "location": {"lat": 48.85312, "lng": 2.37154},
        },
        "items": [
            {"sku": "FLR-T65-25", "label": "Farine T65 25 kg", "quantity": 4, "weight_kg": 100},
            {"sku": "SGR-W-10", "label": "Sucre blanc 10 kg", "quantity": 2, "weight_kg": 20},
            {"sku": "BTR-82-5", "label": "Beurre AOP 82% 5 kg", "quantity": 3, "weight_kg": 15},
        ],
        "driver": {"id": "drv_0042", "name": "Karim B.", "vehicle": "AB-123-CD"},
        "instructions": "Livrer par l'entrée de service, sonner deux fois. Ne pas bloquer.",
        "custom_fields": {"po_number": f"PO-{index:07d}", "cold_chain": False, "pallets": 1},
        "proof": {"signed_by": "M. Martin", "photos": 2},
    }


@dataclass(frozen=True)
class Target:
    """Where events go: the exchange of a vhost, and their type, account and site."""

    amqp_url: str
    exchange: str
    event_type: str
    account: str
    site: str


@dataclass
class PublishResult:
    """When publishing started and ended (monotonic), and the envelope size."""

    started: float
    finished: float
    envelope_bytes: int


def publish_events(target: Target, count: int, rate: float | None) -> PublishResult:
    """Publish ``count`` events: paced at ``rate``/s and confirmed one by one when given,
    else as fast as pipelined confirms allow (``Publisher.publish_many``).

    Each event's ``data.published_at_ns`` is set just before it is published, so the
    receiver can measure publish-to-receipt latency.
    """

    def event(index: int) -> Event:
        data = {"order": work_order(index, target.site), "published_at_ns": time.time_ns()}
        return new_event(target.event_type, target.account, target.site, data)

    envelope_bytes = len(event(0).to_json())
    with Publisher(target.amqp_url, target.exchange) as publisher:
        started = time.monotonic()
        if rate is None:
            publisher.publish_many(event(index) for index in range(count))
        else:
            for index in range(count):
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher.publish(event(index))
        finished = time.monotonic()
    return PublishResult(started, finished, envelope_bytes)
