"""Secret rotation through the API, and a real worker signing with both secrets until expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from router.models import Webhook
from router.publisher import Publisher, new_event
from router.settings import Settings
from tests.config.conftest import ControlListener, Keys, create
from tests.helpers import WorkerThread, wait_until
from tests.receiver import Received, Receiver

THIRTY_DAYS_S = 30 * 24 * 3600


def rotate(api: TestClient, webhook_id: str, headers: dict[str, str], **kwargs: Any) -> Any:
    """POST a secret rotation of the webhook."""
    return api.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=headers, **kwargs)


def stored(sessions: sessionmaker[Session], webhook_id: str) -> Webhook:
    """The webhook's row."""
    with sessions() as session:
        row = session.get(Webhook, webhook_id)
    assert row is not None
    return row


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_rotation_returns_the_new_secret_and_keeps_the_old_one_a_day(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session], control: ControlListener
) -> None:
    # Given a webhook and its creation secret
    created = create(api, acme)
    # When an admin rotates its secret without a body
    before = datetime.now(UTC)
    response = rotate(api, created["id"], acme.admin)
    # Then the answer is the webhook with a new secret, the old one valid for a day
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    expires_at = parse_time(rotated["previous_secret_expires_at"])
    day = timedelta(seconds=86400)
    assert before.replace(microsecond=0) + day <= expires_at <= datetime.now(UTC) + day
    assert {k: v for k, v in rotated.items() if k not in ("secret", "updated_at")} == {
        k: v
        for k, v in created.items()
        if k not in ("secret", "updated_at", "previous_secret_expires_at")
    } | {"previous_secret_expires_at": rotated["previous_secret_expires_at"]}
    # And the row keeps both secrets, and the workers were told
    row = stored(sessions, created["id"])
    assert (row.secret, row.previous_secret) == (rotated["secret"], created["secret"])
    assert created["id"] in control.wait_for(2)
    # And reading the webhook shows the expiry but neither secret
    fetched = api.get(f"/v1/webhooks/{created['id']}", headers=acme.viewer)
    assert fetched.json()["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]
    assert "secret" not in fetched.json()
    assert created["secret"] not in fetched.text
    assert rotated["secret"] not in fetched.text


def test_overlap_zero_drops_the_old_secret_at_once(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given a webhook
    created = create(api, acme)
    # When its secret is rotated with no overlap
    rotated = rotate(api, created["id"], acme.admin, json={"overlap_s": 0}).json()
    # Then no previous secret is kept
    assert rotated["previous_secret_expires_at"] is None
    row = stored(sessions, created["id"])
    assert (row.previous_secret, row.previous_secret_expires_at) == (None, None)


def test_rotating_twice_keeps_only_the_newest_previous_secret(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given a webhook whose secret was rotated once
    created = create(api, acme)
    first = rotate(api, created["id"], acme.admin, json={"overlap_s": 3600}).json()
    # When it is rotated again within the overlap
    second = rotate(api, created["id"], acme.admin, json={"overlap_s": 60}).json()
    # Then the previous secret is the one just replaced, with the new overlap
    row = stored(sessions, created["id"])
    assert (row.secret, row.previous_secret) == (second["secret"], first["secret"])
    expires_at = parse_time(second["previous_secret_expires_at"])
    assert expires_at <= datetime.now(UTC) + timedelta(seconds=60)


def test_the_overlap_setting_is_the_default(
    api: TestClient, acme: Keys, settings: Settings, engine: Engine, broker_admin: Any
) -> None:
    # Given an API whose default overlap is one hour
    from tests.config.conftest import make_client

    hourly = settings.model_copy(update={"secret_rotation_overlap_s": 3600})
    created = create(api, acme)
    # When a secret is rotated with a null overlap
    with make_client(hourly, engine, broker_admin) as hourly_api:
        rotated = rotate(hourly_api, created["id"], acme.admin, json={"overlap_s": None}).json()
    # Then the old secret stays valid for an hour
    expires_at = parse_time(rotated["previous_secret_expires_at"])
    assert expires_at <= datetime.now(UTC) + timedelta(seconds=3600)
    assert expires_at > datetime.now(UTC) + timedelta(seconds=3500)


def test_rotation_needs_an_admin_key_of_the_account(
    api: TestClient, acme: Keys, globex: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given acme's webhook
    created = create(api, acme)
    # When its secret is rotated without a key, by a viewer, by globex's admin, and a missing id
    anonymous = rotate(api, created["id"], {})
    viewer = rotate(api, created["id"], acme.viewer)
    other = rotate(api, created["id"], globex.admin)
    missing = rotate(api, "wh_missing", acme.admin)
    # Then they are 401, 403 and 404 (twice), and the secret is unchanged
    assert [r.status_code for r in (anonymous, viewer, other, missing)] == [401, 403, 404, 404]
    assert stored(sessions, created["id"]).secret == created["secret"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"overlap_s": -1}, "overlap_s"),
        ({"overlap_s": THIRTY_DAYS_S + 1}, "overlap_s"),
        ({"overlap_s": "a day"}, "overlap_s"),
        ({"overlap": 10}, "overlap"),
    ],
)
def test_bad_overlaps_are_422_naming_the_field(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session], body: Any, field: str
) -> None:
    # Given a webhook
    created = create(api, acme)
    # When its secret is rotated with a bad body
    response = rotate(api, created["id"], acme.admin, json=body)
    # Then it is a 422 naming the field, and the secret is unchanged
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert stored(sessions, created["id"]).secret == created["secret"]


@pytest.fixture
def worker(settings: Settings, engine: Engine, api: TestClient) -> Iterator[WorkerThread]:
    """A real worker on the test vhost (the API fixture declared the shared topology)."""
    thread = WorkerThread(settings, engine).start()
    yield thread
    thread.stop()


def deliver_one(settings: Settings, receiver: Receiver) -> Received:
    """Publish a delivery.done event at paris and return what the receiver got for it."""
    event = new_event("delivery.done", "acme", "paris", {"order": {"id": "ord_1"}})
    with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
        publisher.publish(event)
    wait_until(lambda: event.id in receiver.delivered_ids(), 10, f"delivery of {event.id}")
    return next(r for r in receiver.requests if r.headers["webhook-id"] == event.id)


def signatures(received: Received) -> list[str]:
    return received.headers["webhook-signature"].split(" ")


def signed_twice(received: Received) -> Received | None:
    return received if len(signatures(received)) == 2 else None


def test_worker_signs_with_both_secrets_until_the_overlap_ends(
    api: TestClient, acme: Keys, settings: Settings, worker: WorkerThread, receiver: Receiver
) -> None:
    # Given a webhook the worker delivers to
    created = create(api, acme, url=receiver.url)
    wait_until(lambda: worker.consumes(created["id"]), 10, "worker consuming the webhook")
    old = created["secret"]
    # When its secret is rotated with a three-second overlap
    rotated = rotate(api, created["id"], acme.admin, json={"overlap_s": 3}).json()
    new = rotated["secret"]
    expires_at = parse_time(rotated["previous_secret_expires_at"])
    # Then, once the worker heard of it, deliveries carry two signatures
    during = wait_until(
        lambda: signed_twice(deliver_one(settings, receiver)), 10, "a doubly signed delivery"
    )
    # And a receiver holding either secret accepts them
    assert StandardWebhook(old).verify(during.body, during.headers)["type"] == "delivery.done"
    assert StandardWebhook(new).verify(during.body, during.headers)["type"] == "delivery.done"
    # When the overlap has passed (no one tells the worker)
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.1)
    after = deliver_one(settings, receiver)
    # Then only the new secret signs it
    assert len(signatures(after)) == 1
    StandardWebhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(old).verify(after.body, after.headers)
