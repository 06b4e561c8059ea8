"""The admin web pages, in-process on the real broker and databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker

from router.models import DeliveryAttempt, Webhook
from router.settings import Settings
from router.topology import webhook_queue
from tests.config.conftest import Keys, create
from tests.helpers import queue_depth
from tests.receiver import Receiver

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
PASSWORD = "pa55-word-never-shown"
TOKEN_FIELD = re.compile(r'name="(?:csrf_token|sign_in_token)" value="([^"]+)"')


def api_key(headers: dict[str, str]) -> str:
    """The plaintext key inside an Authorization header."""
    return headers["Authorization"].removeprefix("Bearer ")


def form_token(html: str) -> str:
    """The hidden CSRF (or sign-in) token of the first form on a page."""
    match = TOKEN_FIELD.search(html)
    assert match is not None, "no token field on the page"
    return match.group(1)


def browser(api: TestClient, base_url: str = "http://testserver") -> TestClient:
    """Another browser on the same app: its own cookie jar, redirects not followed."""
    return TestClient(api.app, base_url=base_url, follow_redirects=False)


def sign_in(client: TestClient, key: str) -> httpx.Response:
    """Sign in through the form, as a person would."""
    page = client.get("/ui/login")
    assert page.status_code == 200, page.text
    return client.post("/ui/login", data={"api_key": key, "sign_in_token": form_token(page.text)})


def signed_in(api: TestClient, headers: dict[str, str]) -> TestClient:
    """A browser signed in with the key of ``headers``."""
    client = browser(api)
    response = sign_in(client, api_key(headers))
    assert response.status_code == 303, response.text
    return client


def csrf_of(client: TestClient) -> str:
    """The CSRF token of the signed-in browser's forms."""
    return form_token(client.get("/ui/webhooks").text)


def attempt_row(webhook: dict[str, Any], n: int, account: str, **overrides: Any) -> dict[str, Any]:
    """An attempt row as the worker writes it, the n-th one, n minutes after T0."""
    row: dict[str, Any] = {
        "id": f"att_{n:016x}0000cafe",
        "webhook_id": webhook["id"],
        "account_id": account,
        "event_id": f"evt_{n}",
        "event_type": "delivery.done",
        "attempt": 1,
        "trigger": "event",
        "status": "succeeded",
        "outcome": "delivered",
        "response_status": 200,
        "response_body": '{"ok": true}',
        "error": None,
        "duration_ms": 12,
        "request_url": webhook["url"],
        "request_headers": {"content-type": "application/json", "authorization": "[redacted]"},
        "request_body": (
            f'{{"type": "delivery.done", "timestamp": "2026-11-27T18:00:00Z", "id": "evt_{n}",'
            f' "account_id": "{account}", "site_id": "paris", "data": {{"order": {{"id": "o1"}}}}}}'
        ),
        "next_retry_at": None,
        "created_at": T0 + timedelta(minutes=n),
    }
    row.update(overrides)
    return row


def write_attempts(engine: Engine, *rows: dict[str, Any]) -> None:
    """Insert attempt rows directly, as the worker does."""
    with engine.begin() as connection:
        connection.execute(insert(DeliveryAttempt), list(rows))


def failed(webhook: dict[str, Any], n: int, account: str = "acme") -> dict[str, Any]:
    """A failed attempt row: a 500 with a recognisable body."""
    return attempt_row(
        webhook,
        n,
        account,
        status="failed",
        outcome="retrying",
        response_status=500,
        response_body='{"error": "receiver exploded"}',
        error="HTTP 500",
        next_retry_at=T0 + timedelta(minutes=n, seconds=5),
    )


def test_sign_in_keeps_the_key_in_a_strict_http_only_cookie(api: TestClient, acme: Keys) -> None:
    # Given a browser on the sign-in page
    client = browser(api)
    # When it signs in with a valid key
    response = sign_in(client, api_key(acme.admin))
    # Then it goes to the webhooks list with an HttpOnly, SameSite=Strict cookie, not Secure
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/webhooks"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("wr_session="))
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/ui"} <= attributes
    assert "secure" not in attributes
    page = client.get("/ui/webhooks")
    assert page.status_code == 200
    assert "acme" in page.text
    assert page.headers["content-type"].startswith("text/html")


def test_sign_in_over_https_sets_a_secure_cookie(api: TestClient, acme: Keys) -> None:
    client = browser(api, base_url="https://testserver")
    response = sign_in(client, api_key(acme.admin))
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("wr_session="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_an_unknown_key_shows_an_inline_error(api: TestClient, acme: Keys) -> None:
    client = browser(api)
    response = sign_in(client, "wr_not-a-key")
    assert response.status_code == 401
    assert "unknown API key" in response.text
    assert 'id="api_key-error"' in response.text
    assert "wr_session" not in client.cookies
    assert client.get("/ui/webhooks").status_code == 303


@pytest.mark.parametrize("token", [None, "", "made-up"])
def test_sign_in_without_its_form_token_is_refused(
    api: TestClient, acme: Keys, token: str | None
) -> None:
    # A cross-site form cannot send the SameSite=Strict cookie half of the token
    form = {"api_key": api_key(acme.admin)}
    if token is not None:
        form["sign_in_token"] = token
    response = browser(api).post("/ui/login", data=form)
    assert response.status_code == 403
    assert "wr_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "path", ["/ui/webhooks", "/ui/webhooks/new", "/ui/webhooks/wh_x/logs", "/ui/logs/att_x"]
)
def test_pages_without_a_valid_cookie_redirect_to_sign_in(api: TestClient, path: str) -> None:
    # Given a browser that never signed in
    client = browser(api)
    # Then every page and form sends it to the sign-in page
    assert client.get(path).headers["location"] == "/ui/login"
    assert client.post("/ui/webhooks/new", data={}).headers["location"] == "/ui/login"
    # And so does a cookie whose key is unknown (revoked or made up)
    client.cookies.set("wr_session", "wr_revoked-or-made-up", path="/ui")
    assert client.get(path).headers["location"] == "/ui/login"


def test_unknown_pages_are_html_not_found(api: TestClient, acme: Keys) -> None:
    client = signed_in(api, acme.viewer)
    assert client.get("/ui").headers["location"] == "/ui/webhooks"
    response = client.get("/ui/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.text


def test_sign_out_forgets_the_key(api: TestClient, acme: Keys) -> None:
    client = signed_in(api, acme.viewer)
    response = client.post("/ui/logout", data={"csrf_token": csrf_of(client)})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    assert "wr_session" not in client.cookies
    assert client.get("/ui/webhooks").headers["location"] == "/ui/login"


@pytest.mark.parametrize("token", [None, "", "0" * 64])
def test_a_form_without_the_right_csrf_token_is_refused(
    api: TestClient, acme: Keys, token: str | None
) -> None:
    # Given a signed-in admin
    client = signed_in(api, acme.admin)
    form = {"name": "Sneaky", "url": "http://127.0.0.1:9/x", "events": "delivery.done"}
    if token is not None:
        form["csrf_token"] = token
    # When a form arrives without its token, or with a wrong one
    response = client.post("/ui/webhooks/new", data=form)
    # Then it is refused with an HTML page and nothing is created
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "security token" in response.text
    assert api.get("/v1/webhooks", headers=acme.admin).json()["items"] == []


def test_another_keys_csrf_token_is_refused(api: TestClient, acme: Keys) -> None:
    admin = signed_in(api, acme.admin)
    other = signed_in(api, acme.viewer)
    assert csrf_of(admin) != csrf_of(other)
    form = {"name": "x", "url": "http://127.0.0.1:9/x", "events": "delivery.done"}
    response = admin.post("/ui/webhooks/new", data={**form, "csrf_token": csrf_of(other)})
    assert response.status_code == 403


def test_viewers_see_no_write_controls_and_their_posts_are_refused(
    api: TestClient, acme: Keys, engine: Engine
) -> None:
    # Given a webhook with a failed attempt, and a signed-in viewer
    webhook = create(api, acme)
    write_attempts(engine, failed(webhook, 1))
    log_id = attempt_row(webhook, 1, "acme")["id"]
    viewer = signed_in(api, acme.viewer)
    # When the viewer reads every page
    pages = {
        "list": viewer.get("/ui/webhooks"),
        "view": viewer.get(f"/ui/webhooks/{webhook['id']}/edit"),
        "logs": viewer.get(f"/ui/webhooks/{webhook['id']}/logs"),
        "detail": viewer.get(f"/ui/logs/{log_id}"),
    }
    # Then they render, with no form that changes anything (signing out is the only post)
    for name, page in pages.items():
        assert page.status_code == 200, name
        posts = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        assert posts == ["/ui/logout"], name
        for control in ("Send test", "Delete", "Replay", "Save", "/ui/webhooks/new"):
            assert control not in page.text, (name, control)
    assert "Invoices" in pages["view"].text
    assert viewer.get("/ui/webhooks/new").status_code == 403
    assert viewer.get(f"/ui/webhooks/{webhook['id']}/delete").status_code == 403
    # And every write, even with the viewer's valid CSRF token, is refused
    token = {"csrf_token": csrf_of(viewer)}
    for path in (
        "/ui/webhooks/new",
        f"/ui/webhooks/{webhook['id']}/edit",
        f"/ui/webhooks/{webhook['id']}/delete",
        f"/ui/webhooks/{webhook['id']}/test",
        f"/ui/webhooks/{webhook['id']}/dead-letters/replay",
        f"/ui/logs/{log_id}/replay",
    ):
        response = viewer.post(path, data={**token, "name": "Changed", "events": "route.ended"})
        assert response.status_code == 403, path
        assert "read-only" in response.text
    assert api.get(f"/v1/webhooks/{webhook['id']}", headers=acme.admin).json()["name"] == (
        "Invoices"
    )


def test_another_accounts_webhooks_and_logs_are_not_found(
    api: TestClient, acme: Keys, globex: Keys, engine: Engine
) -> None:
    # Given a webhook and an attempt of globex
    theirs = create(api, globex)
    write_attempts(engine, failed(theirs, 1, account="globex"))
    log_id = attempt_row(theirs, 1, "globex")["id"]
    # When acme's admin asks for them by id
    client = signed_in(api, acme.admin)
    token = {"csrf_token": csrf_of(client)}
    responses = [
        client.get(f"/ui/webhooks/{theirs['id']}/edit"),
        client.get(f"/ui/webhooks/{theirs['id']}/logs"),
        client.get(f"/ui/webhooks/{theirs['id']}/delete"),
        client.get(f"/ui/logs/{log_id}"),
        client.post(f"/ui/webhooks/{theirs['id']}/edit", data={**token, "name": "Mine"}),
        client.post(f"/ui/webhooks/{theirs['id']}/delete", data=token),
        client.post(f"/ui/webhooks/{theirs['id']}/test", data=token),
        client.post(f"/ui/webhooks/{theirs['id']}/dead-letters/replay", data=token),
        client.post(f"/ui/logs/{log_id}/replay", data=token),
    ]
    # Then each is a 404 page, and globex's webhook is untouched
    for response in responses:
        assert response.status_code == 404, response.request.url
        assert response.headers["content-type"].startswith("text/html")
        assert "Not found" in response.text
    assert client.get("/ui/webhooks").text.count("data-webhook-id") == 0
    assert api.get(f"/v1/webhooks/{theirs['id']}", headers=globex.admin).status_code == 200


def test_field_errors_show_next_to_their_fields_with_the_input_kept(
    api: TestClient, acme: Keys
) -> None:
    # Given the "+" form of a signed-in admin
    client = signed_in(api, acme.admin)
    token = form_token(client.get("/ui/webhooks/new").text)
    # When it is posted with a bad URL, no events and a bad site
    response = client.post(
        "/ui/webhooks/new",
        data={
            "csrf_token": token,
            "name": "Keep me",
            "url": "ftp://example.com/hooks",
            "auth_mode": "basic",
            "username": "ada",
            "password": PASSWORD,
            "sites": "paris, not a site",
            "include_order": "on",
        },
    )
    # Then each error sits next to its field, and what was typed is still there
    assert response.status_code == 422
    html = response.text
    assert re.search(r'id="url-error">must be an absolute http:// or https:// URL<', html)
    assert re.search(r'id="events-error">choose at least one event<', html)
    assert re.search(r"id=\"sites-error\">&#39;not a site&#39;: site ids are", html)
    assert 'value="Keep me"' in html
    assert 'value="ftp://example.com/hooks"' in html
    assert 'value="paris, not a site"' in html
    assert 'value="ada"' in html
    assert re.search(r'name="include_order" role="switch" checked', html)
    assert re.search(r'value="basic" checked', html)
    # But the password typed is not sent back
    assert PASSWORD not in html
    assert api.get("/v1/webhooks", headers=acme.admin).json()["items"] == []


def test_a_missing_credential_is_a_field_error(api: TestClient, acme: Keys) -> None:
    client = signed_in(api, acme.admin)
    token = csrf_of(client)
    base = {
        "csrf_token": token,
        "name": "A",
        "url": "http://127.0.0.1:9/x",
        "events": "route.ended",
    }
    response = client.post("/ui/webhooks/new", data={**base, "auth_mode": "bearer"})
    assert response.status_code == 422
    assert re.search(r'id="auth-token-error">required<', response.text)
    response = client.post(
        "/ui/webhooks/new", data={**base, "auth_mode": "header", "header_name": "User-Agent"}
    )
    assert re.search(r"id=\"auth-name-error\">&#39;User-Agent&#39; is set by the", response.text)
    assert re.search(r'id="auth-value-error">required<', response.text)


def test_create_shows_the_secret_once_and_no_page_shows_credentials(
    api: TestClient, acme: Keys, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    # Given the "+" form
    client = signed_in(api, acme.admin)
    token = form_token(client.get("/ui/webhooks/new").text)
    # When an admin creates a webhook with basic auth and events of two categories
    response = client.post(
        "/ui/webhooks/new",
        data={
            "csrf_token": token,
            "name": "Invoices",
            "url": "http://127.0.0.1:9/hooks",
            "auth_mode": "basic",
            "username": "ada",
            "password": PASSWORD,
            "events": ["delivery.done", "route.started"],
            "sites": "paris, lyon",
            "enabled": "on",
        },
    )
    # Then the page shows the new signing secret, saying it will not be shown again
    assert response.status_code == 200, response.text
    with sessions() as session:
        row = session.scalars(select(Webhook)).one()
    assert row.secret in response.text
    assert "will not be shown again" in response.text
    assert PASSWORD not in response.text
    assert row.auth_credentials == {"username": "ada", "password": PASSWORD}
    assert (row.events, row.sites, row.include_order) == (
        ["delivery.done", "route.started"],
        ["paris", "lyon"],
        False,
    )
    # And no other page shows the secret or the password
    write_attempts(engine, failed({"id": row.id, "url": row.url}, 1))
    pages = [
        client.get("/ui/webhooks"),
        client.get(f"/ui/webhooks/{row.id}/edit"),
        client.get(f"/ui/webhooks/{row.id}/logs"),
        client.get(f"/ui/webhooks/{row.id}/logs?status=failed"),
        client.get(f"/ui/logs/{attempt_row({'id': row.id, 'url': row.url}, 1, 'acme')['id']}"),
        client.get(f"/ui/webhooks/{row.id}/delete"),
    ]
    for page in pages:
        assert page.status_code == 200, page.request.url
        assert row.secret not in page.text, page.request.url
        assert PASSWORD not in page.text, page.request.url
    edit = pages[1].text
    assert 'value="ada"' in edit
    assert "unchanged (leave blank to keep)" in edit


def test_edit_with_blank_credentials_keeps_them(
    api: TestClient, acme: Keys, sessions: sessionmaker[Session]
) -> None:
    # Given a webhook with basic auth and an open circuit
    webhook = create(api, acme, auth={"mode": "basic", "username": "ada", "password": PASSWORD})
    with sessions() as session:
        row = session.get_one(Webhook, webhook["id"])
        row.circuit_state = "open"
        session.commit()
    client = signed_in(api, acme.admin)
    # When the form is saved with a new name, username and events, the password left blank
    response = client.post(
        f"/ui/webhooks/{webhook['id']}/edit",
        data={
            "csrf_token": csrf_of(client),
            "name": "Renamed",
            "url": webhook["url"],
            "auth_mode": "basic",
            "username": "grace",
            "password": "",
            "events": ["delivery.done", "loading.done"],
            "sites": "paris",
            "enabled": "on",
        },
    )
    # Then the changes are saved, the stored password kept, the circuit left alone
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/webhooks"
    with sessions() as session:
        row = session.get_one(Webhook, webhook["id"])
    assert row.name == "Renamed"
    assert row.auth_credentials == {"username": "grace", "password": PASSWORD}
    assert row.events == ["delivery.done", "loading.done"]
    assert row.circuit_state == "open"
    assert "Saved webhook “Renamed”." in client.get("/ui/webhooks").text
    # When the mode changes to bearer without a token, that is an error
    response = client.post(
        f"/ui/webhooks/{webhook['id']}/edit",
        data={"csrf_token": csrf_of(client), "name": "Renamed", "auth_mode": "bearer"},
    )
    assert response.status_code == 422
    assert re.search(r'id="auth-token-error">required<', response.text)


def test_the_list_shows_each_webhooks_last_delivery(
    api: TestClient, acme: Keys, engine: Engine
) -> None:
    # Given three webhooks: last attempt succeeded, last attempt failed, never delivered
    good, bad, new = (create(api, acme, name=name) for name in ("Good", "Bad", "New"))
    write_attempts(
        engine,
        failed(good, 1),
        attempt_row(good, 2, "acme"),
        attempt_row(bad, 3, "acme"),
        failed(bad, 4),
    )
    # When an admin opens the list
    html = signed_in(api, acme.admin).get("/ui/webhooks").text
    # Then each row shows its own last status, circuit and a menu

    def row_of(webhook: dict[str, Any]) -> str:
        match = re.search(rf'data-webhook-id="{webhook["id"]}">(.*?)</tr>', html, re.S)
        assert match is not None
        return match.group(1)

    assert "status-ok" in row_of(good)
    assert "status-failed" not in row_of(good)
    assert "status-failed" in row_of(bad)
    assert "status-none" in row_of(new)
    assert "circuit-closed" in row_of(new)
    for action in ("Edit", "Logs", "Send test", "Delete"):
        assert action in row_of(good)
    assert 'href="/ui/webhooks/new"' in html


def test_logs_page_filters_pages_and_opens_the_detail(
    api: TestClient, acme: Keys, engine: Engine
) -> None:
    # Given 55 attempts: every fifth failed, the last one a route.started
    webhook = create(api, acme)
    rows = [
        failed(webhook, n) if n % 5 == 0 else attempt_row(webhook, n, "acme") for n in range(55)
    ]
    rows[-1]["event_type"] = "route.started"
    write_attempts(engine, *rows)
    client = signed_in(api, acme.admin)
    logs = f"/ui/webhooks/{webhook['id']}/logs"
    # When the logs page opens: the newest 50, with counts per status
    page = client.get(logs).text
    assert page.count('class="log-row') == 50
    assert "status-ok" in page
    assert "status-failed" in page
    assert re.search(r"All <span class=\"muted\">55</span>", page)
    assert re.search(r"Errors only <span class=\"muted\">11</span>", page)
    # Then Older shows the rest and Newer comes back
    older = re.search(r'href="([^"]+)" class="button">Older', page)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&")).text
    assert second.count('class="log-row') == 5
    newer = re.search(r'href="([^"]+)" class="button">← Newer', second)
    assert newer is not None
    assert client.get(newer.group(1).replace("&amp;", "&")).text.count('class="log-row') == 50
    # And errors only shows the failures alone
    errors = client.get(logs, params={"status": "failed"}).text
    assert errors.count('class="log-row log-failed"') == 11
    assert 'class="log-row log-succeeded"' not in errors
    # And one event type alone
    only = client.get(logs, params={"event_type": "route.started"}).text
    assert only.count('class="log-row') == 1
    assert client.get(logs, params={"event_type": "nope"}).status_code == 400
    # When a failed attempt is opened
    detail = client.get(f"/ui/logs/{rows[50]['id']}").text
    # Then it shows the request (redacted), the response body, the error and the retry time
    assert "[redacted]" in detail
    assert "receiver exploded" in detail
    assert "HTTP 500" in detail
    assert "2026-11-27 18:50:05 UTC" in detail
    assert "&#34;order&#34;: {\n" in detail  # pretty JSON
    assert 'action="/ui/logs/' in detail
    assert "Replay" in detail
    # But a successful one has no Replay button
    assert "Replay" not in client.get(f"/ui/logs/{rows[1]['id']}").text


def test_replay_buttons_queue_the_event_and_say_so(
    api: TestClient, acme: Keys, engine: Engine, settings: Settings
) -> None:
    # Given a failed attempt of a webhook
    webhook = create(api, acme)
    write_attempts(engine, failed(webhook, 1))
    client = signed_in(api, acme.admin)
    token = {"csrf_token": csrf_of(client)}
    # When an admin replays it
    response = client.post(f"/ui/logs/{attempt_row(webhook, 1, 'acme')['id']}/replay", data=token)
    # Then the event waits in the webhook's queue and the logs page says so, once
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/webhooks/{webhook['id']}/logs"
    amqp_url = settings.amqp_url.get_secret_value()
    assert queue_depth(amqp_url, webhook_queue(webhook["id"])) == 1
    page = client.get(response.headers["location"]).text
    assert "Event evt_1 queued for delivery again." in page
    assert "queued for delivery again" not in client.get(response.headers["location"]).text
    # When the dead letters are replayed (there are none)
    response = client.post(f"/ui/webhooks/{webhook['id']}/dead-letters/replay", data=token)
    assert response.status_code == 303
    assert "0 dead letter(s) moved back into delivery." in client.get(logs_of(webhook)).text


def logs_of(webhook: dict[str, Any]) -> str:
    """The logs page of a webhook."""
    return f"/ui/webhooks/{webhook['id']}/logs"


def test_send_test_shows_the_attempt(api: TestClient, acme: Keys, receiver: Receiver) -> None:
    # Given a webhook pointing at a real receiver
    webhook = create(api, acme, url=receiver.url + "/hooks")
    client = signed_in(api, acme.admin)
    # When an admin sends a test from the menu
    response = client.post(
        f"/ui/webhooks/{webhook['id']}/test", data={"csrf_token": csrf_of(client)}
    )
    # Then the receiver got it and the page shows the attempt
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/logs/")
    assert len(receiver.wait_for(1)) == 1
    detail = client.get(response.headers["location"]).text
    assert "Test event delivered." in detail
    assert "status-ok" in detail
    assert "status-ok" in client.get("/ui/webhooks").text


def test_delete_asks_first(api: TestClient, acme: Keys) -> None:
    webhook = create(api, acme)
    client = signed_in(api, acme.admin)
    confirm = client.get(f"/ui/webhooks/{webhook['id']}/delete")
    assert "Delete “Invoices”?" in confirm.text
    response = client.post(
        f"/ui/webhooks/{webhook['id']}/delete", data={"csrf_token": form_token(confirm.text)}
    )
    assert response.status_code == 303
    assert "Deleted webhook “Invoices”." in client.get("/ui/webhooks").text
    assert api.get(f"/v1/webhooks/{webhook['id']}", headers=acme.admin).status_code == 404


def test_the_pages_stay_out_of_the_openapi_schema(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert paths
    assert not [path for path in paths if path.startswith("/ui")]
    stylesheet = api.get("/ui/static/ui.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
