"""The webhooks API on the real broker and database: scoping, validation, live bindings."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from router.broker import BrokerAdmin
from router.models import Webhook
from router.settings import Settings
from tests.config.conftest import (
    DEAD_BROKER_URL,
    Bus,
    ControlListener,
    Keys,
    create,
    make_client,
    webhook_body,
)


def test_event_types_lists_the_whole_catalog(api: TestClient, acme: Keys) -> None:
    # Given a viewer key
    # When the catalog is read
    response = api.get("/v1/event-types", headers=acme.viewer)
    # Then it holds the 26 types in 7 categories, in catalog order
    assert response.status_code == 200
    body = response.json()
    assert len(body["items"]) == 26
    assert body["items"][0] == {
        "type": "delivery.created",
        "category": "status",
        "label": "Delivery created",
    }
    assert body["categories"] == [
        "status",
        "planning",
        "proof_of_delivery",
        "other",
        "route",
        "notification",
        "pickup_delivery",
    ]


def test_create_shows_the_secret_once_and_never_the_credentials(
    api: TestClient, acme: Keys
) -> None:
    # Given a body with basic auth and messy name, events and sites
    auth = {"mode": "basic", "username": "u", "password": "s3cr3t-pw"}
    # When an admin creates the webhook
    response = api.post(
        "/v1/webhooks",
        json=webhook_body(
            name="  Invoices  ",
            auth=auth,
            events=["delivery.done", "route.started", "delivery.done"],
            sites=["paris", "lyon", "paris"],
        ),
        headers=acme.admin,
    )
    # Then it answers 201 with the secret, credentials left out, lists deduplicated
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["id"].startswith("wh_")
    assert created["name"] == "Invoices"
    assert created["auth"] == {"mode": "basic", "username": "u"}
    assert created["events"] == ["delivery.done", "route.started"]
    assert created["sites"] == ["paris", "lyon"]
    assert created["include_order"] is False
    assert created["enabled"] is True
    assert created["created_at"].endswith("Z")
    assert "s3cr3t-pw" not in response.text
    # And reading it back shows neither the secret nor the password
    fetched = api.get(f"/v1/webhooks/{created['id']}", headers=acme.viewer)
    assert fetched.status_code == 200
    assert "secret" not in fetched.json()
    assert "s3cr3t-pw" not in fetched.text
    assert fetched.json() == {k: v for k, v in created.items() if k != "secret"} | {
        "backlog": {"pending": 0, "dead_letters": 0}
    }


def test_credentials_are_stored_for_the_worker(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given a webhook created with header authentication
    auth = {"mode": "header", "name": "X-Api-Key", "value": "k-123"}
    created = create(api, acme, auth=auth)
    # When its row is read
    with sessions() as session:
        row = session.get(Webhook, created["id"])
    # Then the row keeps the credentials the worker needs and the account of the key
    assert row is not None
    assert row.auth_mode == "header"
    assert row.auth_credentials == {"name": "X-Api-Key", "value": "k-123"}
    assert row.account_id == "acme"
    assert created["auth"] == {"mode": "header", "name": "X-Api-Key"}


def test_new_webhook_receives_exactly_its_events_and_sites(
    api: TestClient, acme: Keys, bus: Bus
) -> None:
    # Given a webhook on delivery.done at paris
    queue = f"webhook.{create(api, acme)['id']}"
    # When events of every kind are published
    bus.publish("acme.paris.delivery.done")
    bus.publish("acme.lyon.delivery.done")
    bus.publish("acme.paris.route.started")
    bus.publish("globex.paris.delivery.done")
    # Then only the matching one is in its queue
    assert bus.count(queue) == 1


def test_patch_changes_bindings_live(api: TestClient, acme: Keys, bus: Bus) -> None:
    # Given a webhook on delivery.done at paris
    webhook_id = create(api, acme)["id"]
    queue = f"webhook.{webhook_id}"
    url = f"/v1/webhooks/{webhook_id}"
    # When its sites change to lyon
    response = api.patch(url, json={"sites": ["lyon"]}, headers=acme.admin)
    assert response.status_code == 200, response.text
    # Then paris no longer reaches it and lyon does
    bus.publish("acme.paris.delivery.done")
    bus.publish("acme.lyon.delivery.done")
    assert bus.count(queue) == 1
    # When it is disabled, nothing reaches it
    assert api.patch(url, json={"enabled": False}, headers=acme.admin).status_code == 200
    bus.publish("acme.lyon.delivery.done")
    assert bus.count(queue) == 1
    # When it is enabled on every site and route.started, both reach it from anywhere
    response = api.patch(
        url,
        json={"enabled": True, "sites": [], "events": ["route.started", "delivery.done"]},
        headers=acme.admin,
    )
    assert response.status_code == 200
    bus.publish("acme.nice.route.started")
    bus.publish("acme.paris.delivery.done")
    assert bus.count(queue) == 3


def test_every_change_notifies_the_workers(
    api: TestClient, acme: Keys, control: ControlListener
) -> None:
    # Given a worker listening on the control exchange
    # When a webhook is created, changed and deleted
    webhook_id = create(api, acme)["id"]
    api.patch(f"/v1/webhooks/{webhook_id}", json={"name": "x"}, headers=acme.admin)
    api.delete(f"/v1/webhooks/{webhook_id}", headers=acme.admin)
    # Then the worker hears of each change, in order
    assert control.wait_for(3) == [webhook_id] * 3


def test_patch_changes_only_the_fields_given(api: TestClient, acme: Keys) -> None:
    # Given a webhook with basic auth
    created = create(api, acme, auth={"mode": "basic", "username": "u", "password": "p"})
    # When its name and auth are patched
    response = api.patch(
        f"/v1/webhooks/{created['id']}",
        json={"name": "Renamed", "auth": {"mode": "bearer", "token": "t-1"}},
        headers=acme.admin,
    )
    # Then those change, the rest stays, and neither token nor secret is shown
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["auth"] == {"mode": "bearer"}
    assert body["url"] == created["url"]
    assert body["events"] == created["events"]
    assert body["updated_at"] >= created["updated_at"]
    assert "secret" not in body
    assert "t-1" not in response.text


def test_patch_rejects_null(api: TestClient, acme: Keys) -> None:
    # Given a webhook
    webhook_id = create(api, acme)["id"]
    # When a field is patched to null
    response = api.patch(f"/v1/webhooks/{webhook_id}", json={"url": None}, headers=acme.admin)
    # Then it is refused and names the field
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "url"


def test_delete_removes_the_queue(api: TestClient, acme: Keys, bus: Bus) -> None:
    # Given a webhook with a message waiting
    webhook_id = create(api, acme)["id"]
    bus.publish("acme.paris.delivery.done")
    assert bus.count(f"webhook.{webhook_id}") == 1
    # When it is deleted
    response = api.delete(f"/v1/webhooks/{webhook_id}", headers=acme.admin)
    # Then it answers 204, the queues are gone and so is the webhook
    assert response.status_code == 204
    assert response.content == b""
    assert bus.count(f"webhook.{webhook_id}") is None
    assert bus.count(f"webhook.{webhook_id}.dead") is None
    assert api.get(f"/v1/webhooks/{webhook_id}", headers=acme.admin).status_code == 404


def test_viewer_reads_but_cannot_write(api: TestClient, acme: Keys) -> None:
    # Given a webhook and a viewer key of the same account
    webhook_id = create(api, acme)["id"]
    url = f"/v1/webhooks/{webhook_id}"
    # When the viewer reads and tries every write
    reads = [api.get("/v1/webhooks", headers=acme.viewer), api.get(url, headers=acme.viewer)]
    writes = [
        api.post("/v1/webhooks", json=webhook_body(), headers=acme.viewer),
        api.patch(url, json={"name": "x"}, headers=acme.viewer),
        api.delete(url, headers=acme.viewer),
    ]
    # Then reads succeed and every write is 403 with the error shape
    assert [r.status_code for r in reads] == [200, 200]
    assert [r.status_code for r in writes] == [403, 403, 403]
    assert writes[0].json()["error"]["field"] is None
    assert "admin" in writes[0].json()["error"]["message"]


def test_another_accounts_webhook_is_not_found(api: TestClient, acme: Keys, globex: Keys) -> None:
    # Given a webhook of acme
    webhook_id = create(api, acme)["id"]
    url = f"/v1/webhooks/{webhook_id}"
    missing = api.get("/v1/webhooks/wh_0000000000000000deadbeef", headers=globex.admin)
    # When globex reads, changes or deletes it
    responses = [
        api.get(url, headers=globex.admin),
        api.patch(url, json={"name": "mine"}, headers=globex.admin),
        api.delete(url, headers=globex.admin),
    ]
    # Then each is a 404 like a missing id, and globex's list is empty
    assert [r.status_code for r in responses] == [404, 404, 404]
    assert missing.status_code == 404
    assert set(responses[0].json()["error"]) == set(missing.json()["error"])
    assert api.get("/v1/webhooks", headers=globex.admin).json()["items"] == []
    # And acme's webhook is unchanged
    assert api.get(url, headers=acme.admin).json()["name"] == "Invoices"


def test_list_pages_through_webhooks_in_creation_order(api: TestClient, acme: Keys) -> None:
    # Given three webhooks
    ids = [create(api, acme, name=f"hook {i}")["id"] for i in range(3)]
    # When they are listed two at a time
    first = api.get("/v1/webhooks", params={"limit": 2}, headers=acme.viewer).json()
    second = api.get(
        "/v1/webhooks", params={"limit": 2, "cursor": first["next_cursor"]}, headers=acme.viewer
    ).json()
    # Then the pages hold them in order and the last page has no cursor
    assert [w["id"] for w in first["items"]] == ids[:2]
    assert first["next_cursor"] is not None
    assert [w["id"] for w in second["items"]] == ids[2:]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "garbage!!"}, "cursor"), ({"limit": 0}, "limit"), ({"limit": 201}, "limit")],
)
def test_list_rejects_bad_paging(
    offline_api: TestClient, acme: Keys, params: dict[str, Any], field: str
) -> None:
    # Given a bad cursor or limit
    # When webhooks are listed with it
    response = offline_api.get("/v1/webhooks", params=params, headers=acme.viewer)
    # Then it is a 422 naming the parameter
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"events": ["delivery.done", "delivery.exploded"]}, "events.1"),
        ({"events": []}, "events"),
        ({"auth": {"mode": "basic", "username": "u"}}, "auth.password"),
        ({"auth": {"mode": "bearer", "token": ""}}, "auth.token"),
        ({"auth": {"mode": "header", "name": "Webhook-Signature", "value": "x"}}, "auth.name"),
        ({"auth": {"mode": "header", "name": "bad name", "value": "x"}}, "auth.name"),
        ({"auth": {"mode": "magic"}}, "auth"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"url": "https://user:pw@example.com/"}, "url"),
        ({"url": "https://example.com/" + "a" * 2048}, "url"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"sites": ["paris", "a.b"]}, "sites.1"),
        ({"sites": [f"s{i}" for i in range(101)]}, "sites"),
        ({"include_order": "maybe"}, "include_order"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_create_rejects_invalid_fields(
    offline_api: TestClient, acme: Keys, overrides: dict[str, Any], field: str
) -> None:
    # Given a body with one invalid field
    # When it is posted
    response = offline_api.post("/v1/webhooks", json=webhook_body(**overrides), headers=acme.admin)
    # Then it is a 422 naming that field first and listing it
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert {"field": field, "message": error["message"].removeprefix(f"{field}: ")} in error[
        "errors"
    ]
    # And nothing was created
    assert offline_api.get("/v1/webhooks", headers=acme.admin).json()["items"] == []


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_create_rejects_malformed_bodies(
    offline_api: TestClient, acme: Keys, content: bytes
) -> None:
    # Given a body that is not a JSON object
    headers = {**acme.admin, "content-type": "application/json"}
    # When it is posted
    response = offline_api.post("/v1/webhooks", content=content, headers=headers)
    # Then it is a 422 in the error shape, not a server error
    assert response.status_code == 422
    assert response.json()["error"]["field"] is None
    assert response.json()["error"]["message"].startswith("request body")


def test_private_targets_are_refused_unless_allowed(
    settings: Settings, engine: Engine, broker_admin: BrokerAdmin, acme: Keys
) -> None:
    # Given an API that does not allow private targets
    strict = settings.model_copy(update={"allow_private_targets": False})
    with make_client(strict, engine, broker_admin) as api:
        # When webhooks point at loopback, a private network, and a public address
        loopback = api.post("/v1/webhooks", json=webhook_body(), headers=acme.admin)
        private = api.post(
            "/v1/webhooks", json=webhook_body(url="http://10.1.2.3/"), headers=acme.admin
        )
        public = api.post(
            "/v1/webhooks", json=webhook_body(url="https://93.184.215.14/"), headers=acme.admin
        )
        # Then the first two are refused on url, the public one is created
        for response in (loopback, private):
            assert response.status_code == 422
            assert response.json()["error"]["field"] == "url"
            assert "public" in response.json()["error"]["message"]
        assert public.status_code == 201, public.text
        # And changing the URL to a private one is refused too
        patch = api.patch(
            f"/v1/webhooks/{public.json()['id']}",
            json={"url": "http://[::1]:8080/"},
            headers=acme.admin,
        )
        assert patch.status_code == 422
        assert patch.json()["error"]["field"] == "url"


def test_broker_down_rolls_back_with_503(
    api: TestClient, settings: Settings, engine: Engine, acme: Keys
) -> None:
    # Given a webhook, and an API whose broker is unreachable
    webhook_id = create(api, acme)["id"]
    with make_client(settings, engine, BrokerAdmin(DEAD_BROKER_URL)) as down:
        # When a webhook is created, changed and deleted
        responses = [
            down.post("/v1/webhooks", json=webhook_body(name="new"), headers=acme.admin),
            down.patch(f"/v1/webhooks/{webhook_id}", json={"name": "x"}, headers=acme.admin),
            down.delete(f"/v1/webhooks/{webhook_id}", headers=acme.admin),
        ]
    # Then each is a 503 and nothing changed in the database
    expected = {"error": {"message": "message broker unavailable, try again", "field": None}}
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert all(r.json() == expected for r in responses)
    items = api.get("/v1/webhooks", headers=acme.admin).json()["items"]
    assert [(w["id"], w["name"]) for w in items] == [(webhook_id, "Invoices")]


def test_rows_are_scoped_to_the_creating_account(
    api: TestClient, acme: Keys, globex: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given one webhook per account
    create(api, acme)
    create(api, globex, name="Theirs")
    # When each account lists its webhooks
    mine = api.get("/v1/webhooks", headers=acme.viewer).json()["items"]
    theirs = api.get("/v1/webhooks", headers=globex.viewer).json()["items"]
    # Then each sees only its own
    assert [w["name"] for w in mine] == ["Invoices"]
    assert [w["name"] for w in theirs] == ["Theirs"]
    with sessions() as session:
        assert len(session.scalars(select(Webhook)).all()) == 2
