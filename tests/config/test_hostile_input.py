"""Input PostgreSQL cannot store or compare (NUL characters) is refused with 4xx, never 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.config.conftest import Keys, create, webhook_body

# NUL characters and out-of-range times are PostgreSQL's problems; SQLite stores them.
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.mark.parametrize(
    "name", ["a\x00b", "tab\tinside", "line\nbreak", "bell\x07", "del\x7f"], ids=repr
)
def test_names_with_control_characters_are_422(api: TestClient, acme: Keys, name: str) -> None:
    # Given a webhook
    hook = create(api, acme)
    # When it is created or renamed with a control character in its name
    created = api.post("/v1/webhooks", json=webhook_body(name=name), headers=acme.admin)
    renamed = api.patch(f"/v1/webhooks/{hook['id']}", json={"name": name}, headers=acme.admin)
    # Then both are refused, naming the field, and the name is unchanged
    for response in (created, renamed):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "name"
        assert "control characters" in response.json()["error"]["message"]
    assert api.get(f"/v1/webhooks/{hook['id']}", headers=acme.admin).json()["name"] == "Invoices"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/webhooks/wh_a%00b"),
        ("PATCH", "/v1/webhooks/wh_a%00b"),
        ("DELETE", "/v1/webhooks/wh_a%00b"),
        ("GET", "/v1/webhooks/wh_a%00b/logs"),
        ("POST", "/v1/webhooks/wh_a%00b/rotate-secret"),
        ("POST", "/v1/webhooks/wh_a%00b/test"),
        ("POST", "/v1/webhooks/wh_a%00b/dead-letters/replay"),
        ("GET", "/v1/logs/att_a%00b"),
        ("POST", "/v1/logs/att_a%00b/replay"),
        ("GET", "/ui/webhooks/wh_a%00b/edit"),
        ("GET", "/ui/logs/att_a%00b"),
    ],
)
def test_ids_with_nul_are_404(api: TestClient, acme: Keys, method: str, path: str) -> None:
    # Given an id with a NUL character in it (no row can have one)
    # When any route is called with it
    cookies = {"wr_session": acme.admin["Authorization"].removeprefix("Bearer ")}
    headers = {**acme.admin, "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    json = {} if method == "PATCH" else None
    response = api.request(method, path, headers=headers, json=json)
    # Then it is not found, as any unknown id is
    assert response.status_code == 404, response.text


def test_the_schema_documents_what_names_events_and_sites_accept(api: TestClient) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    create_props = schemas["WebhookCreate"]["properties"]
    assert "pattern" in create_props["name"]
    assert "delivery.done" in create_props["events"]["items"]["enum"]
    assert create_props["sites"]["items"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    # PATCH fields may be omitted, never null: the schema no longer offers null
    update_props = schemas["WebhookUpdate"]["properties"]
    for name in ("name", "url", "auth", "events", "sites", "include_order", "enabled"):
        assert (
            "anyOf" not in update_props[name] or {"type": "null"} not in update_props[name]["anyOf"]
        ), name
    assert {"type": "null"} in update_props["max_attempts"]["anyOf"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("since=0001-01-01T00:00:00%2B01:00", "since"), ("until=9999-12-31T23:59:59-01:00", "until")],
)
def test_times_with_no_utc_equivalent_are_422(
    api: TestClient, acme: Keys, query: str, field: str
) -> None:
    # Given a webhook
    hook = create(api, acme)
    # When its logs are filtered by a time that overflows once converted to UTC
    response = api.get(f"/v1/webhooks/{hook['id']}/logs?{query}", headers=acme.admin)
    # Then the filter is refused, naming it
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_a_json_body_that_is_not_utf8_is_422(api: TestClient, acme: Keys) -> None:
    # Given a JSON request whose body is not UTF-8 (found by the fuzzer: it was a bare 400)
    body = b'{"name": "\xff\xfe"}'
    # When it is posted
    response = api.post(
        "/v1/webhooks", content=body, headers={**acme.admin, "content-type": "application/json"}
    )
    # Then it is a 422 like any body that is not JSON
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("request body is not valid JSON")
