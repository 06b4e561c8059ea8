"""Tenant isolation: every route of the app, called by nobody, and by both roles of two accounts.

The routes come from ``app.routes``: a route missing from ``ROUTES`` (the table of how to
call each one) fails the test, so a new route cannot slip past the matrix.

Proven for each route, on acme's webhook and attempt:
- no key: 401 on the JSON API, a redirect to the sign-in form on the pages;
- a viewer key on a write: 403;
- any key of globex on acme's ids: 404 (never 2xx), and acme's rows, queues and receiver
  untouched afterwards;
- no answer to one account ever shows the other's webhooks or attempts;
- and acme's admin gets the route's success status, so the 404s above are not typos.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import fastapi.routing
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.routing import Mount, Route

from config.ui_session import CSRF_FIELD, SESSION_COOKIE, SIGN_IN_COOKIE, csrf_token
from router.broker import BrokerAdmin
from router.models import DeliveryAttempt, Webhook
from tests.config.conftest import Keys, create
from tests.receiver import Receiver
from tests.reliability.attempts import add_attempt

Access = Literal["public", "read", "write"]
Payload = dict[str, Any]
SIGN_IN_PATH = "/ui/login"


@dataclass(frozen=True)
class Caller:
    """Who calls: an account's key of one role."""

    account: str
    role: str
    key: str

    def __str__(self) -> str:
        return f"{self.account}:{self.role}"


@dataclass(frozen=True)
class Target:
    """The ids a call is made on, and where a created webhook should point."""

    webhook_id: str
    log_id: str
    receiver_url: str


def _no_fields(target: Target) -> Payload:
    return {}


@dataclass(frozen=True)
class RouteCall:
    """How to call one route and what it answers a caller allowed to use it."""

    access: Access
    ok: int
    json: Callable[[Target], Payload] | None = None
    form: Callable[[Target], Payload] = _no_fields  # a page form's fields, CSRF token aside
    anonymous: int | None = None  # public routes only: the status without a key
    concrete_path: str | None = None  # for paths with parameters other than the ids


def _new_webhook(target: Target) -> Payload:
    return {"name": "created", "url": target.receiver_url, "events": ["delivery.done"]}


def _webhook_form(target: Target) -> Payload:
    return {
        "name": "renamed",
        "url": target.receiver_url,
        "auth_mode": "none",
        "events": ["delivery.done"],
        "enabled": "on",
    }


# Every route of the app: (method, path as in app.routes) -> how to call it. Mounts use
# the method "MOUNT".
ROUTES: dict[tuple[str, str], RouteCall] = {
    # The JSON API.
    ("GET", "/v1/event-types"): RouteCall("read", 200),
    ("GET", "/v1/webhooks"): RouteCall("read", 200),
    ("POST", "/v1/webhooks"): RouteCall("write", 201, json=_new_webhook),
    ("GET", "/v1/webhooks/{webhook_id}"): RouteCall("read", 200),
    ("PATCH", "/v1/webhooks/{webhook_id}"): RouteCall(
        "write", 200, json=lambda _t: {"name": "renamed"}
    ),
    ("DELETE", "/v1/webhooks/{webhook_id}"): RouteCall("write", 204),
    ("POST", "/v1/webhooks/{webhook_id}/test"): RouteCall("write", 201),
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): RouteCall("write", 200),
    ("GET", "/v1/webhooks/{webhook_id}/logs"): RouteCall("read", 200),
    ("GET", "/v1/logs/{log_id}"): RouteCall("read", 200),
    ("POST", "/v1/logs/{log_id}/replay"): RouteCall("write", 202),
    ("POST", "/v1/webhooks/{webhook_id}/dead-letters/replay"): RouteCall("write", 200),
    # Operations and documentation: no key, no account data.
    ("GET", "/healthz"): RouteCall("public", 200),
    ("GET", "/readyz"): RouteCall("public", 200),
    ("GET", "/metrics"): RouteCall("public", 200),
    ("GET", "/openapi.json"): RouteCall("public", 200),
    ("GET", "/docs"): RouteCall("public", 200),
    ("GET", "/docs/oauth2-redirect"): RouteCall("public", 200),
    ("GET", "/redoc"): RouteCall("public", 200),
    ("MOUNT", "/ui/static"): RouteCall("public", 200, concrete_path="/ui/static/ui.css"),
    # The web pages.
    ("GET", "/ui"): RouteCall("public", 303),
    ("GET", "/ui/"): RouteCall("public", 303),
    ("GET", "/ui/login"): RouteCall("public", 303, anonymous=200),
    ("POST", "/ui/login"): RouteCall("public", 303, anonymous=401),
    ("POST", "/ui/logout"): RouteCall("read", 303),
    ("GET", "/ui/webhooks"): RouteCall("read", 200),
    ("GET", "/ui/webhooks/new"): RouteCall("write", 200),
    ("POST", "/ui/webhooks/new"): RouteCall("write", 200, form=_webhook_form),
    ("GET", "/ui/webhooks/{webhook_id}/edit"): RouteCall("read", 200),
    ("POST", "/ui/webhooks/{webhook_id}/edit"): RouteCall("write", 303, form=_webhook_form),
    ("GET", "/ui/webhooks/{webhook_id}/delete"): RouteCall("write", 200),
    ("POST", "/ui/webhooks/{webhook_id}/delete"): RouteCall("write", 303),
    ("POST", "/ui/webhooks/{webhook_id}/test"): RouteCall("write", 303),
    ("GET", "/ui/webhooks/{webhook_id}/logs"): RouteCall("read", 200),
    ("GET", "/ui/logs/{log_id}"): RouteCall("read", 200),
    ("POST", "/ui/logs/{log_id}/replay"): RouteCall("write", 303),
    ("POST", "/ui/webhooks/{webhook_id}/dead-letters/replay"): RouteCall("write", 303),
    ("GET", "/ui/{path:path}"): RouteCall("read", 404, concrete_path="/ui/no-such-page"),
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route of the app, included routers flattened; HEAD goes with GET."""
    # FastAPI 0.16x keeps included routers as one lazy entry of app.routes each and
    # flattens them with iter_route_contexts; older versions copied their routes in.
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    entries = list(flatten(app.routes)) if flatten is not None else list(app.routes)
    found: set[tuple[str, str]] = set()
    for entry in entries:
        route = getattr(entry, "original_route", entry)
        path = str(entry.path)
        if isinstance(route, Mount):
            found.add(("MOUNT", path))
        elif isinstance(route, Route):  # APIRoute is one too
            found.update((method, path) for method in entry.methods or () if method != "HEAD")
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return found


def expected_status(path: str, call: RouteCall, caller: Caller | None, owner: str) -> int:
    """What ``caller`` must get on ``path`` made on the account ``owner``'s ids."""
    if caller is None:
        if call.access == "public":
            return call.anonymous if call.anonymous is not None else call.ok
        return 303 if path.startswith("/ui") else 401
    if call.access == "write" and caller.role != "admin":
        return 403
    if ("{webhook_id}" in path or "{log_id}" in path) and caller.account != owner:
        return 404
    return call.ok


def send(
    client: TestClient, key: tuple[str, str], call: RouteCall, caller: Caller | None, on: Target
) -> httpx.Response:
    """Make ``call`` as ``caller`` (a bearer key on /v1, the session cookie on /ui)."""
    method, path = key
    method = "GET" if method == "MOUNT" else method
    url = (call.concrete_path or path).format(webhook_id=on.webhook_id, log_id=on.log_id)
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    data: Payload | None = None
    if path.startswith("/ui"):
        if caller is not None:
            cookies[SESSION_COOKIE] = caller.key
        if method == "POST":
            data = call.form(on)
            if caller is not None:
                data[CSRF_FIELD] = csrf_token(caller.key)
        if (method, path) == ("POST", SIGN_IN_PATH):
            token = secrets.token_urlsafe(16)
            cookies[SIGN_IN_COOKIE] = token
            data = {"api_key": caller.key if caller else "", "sign_in_token": token}
    elif caller is not None:
        headers["Authorization"] = f"Bearer {caller.key}"
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    # Each call stands alone: nothing a previous answer set may ride along.
    client.cookies.clear()
    body = call.json(on) if call.json is not None else None
    return client.request(method, url, headers=headers, json=body, data=data)


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@dataclass
class Account:
    """One tenant: its keys as callers, and a webhook with one attempt."""

    name: str
    admin: Caller
    viewer: Caller
    webhook_id: str
    log_id: str
    private: tuple[str, ...]  # strings only this account's answers may contain

    def target(self, receiver_url: str) -> Target:
        return Target(self.webhook_id, self.log_id, receiver_url)


def make_account(api: TestClient, engine: Engine, keys: Keys, receiver: Receiver) -> Account:
    name = keys.account_id
    hook = create(
        api,
        keys,
        name=f"{name}-private-hook",
        url=f"{receiver.url}/{name}-private-path",
        sites=[f"{name}-site"],
    )
    log_id = add_attempt(engine, hook, name)
    return Account(
        name=name,
        admin=Caller(name, "admin", key_of(keys.admin)),
        viewer=Caller(name, "viewer", key_of(keys.viewer)),
        webhook_id=hook["id"],
        log_id=log_id,
        private=(hook["id"], log_id, f"{name}-private", f"{name}-site", hook["secret"]),
    )


def snapshot(engine: Engine, admin: BrokerAdmin, account: Account, receiver: Receiver) -> Payload:
    """Everything of ``account`` a foreign call could change."""
    with Session(engine) as session:
        webhooks = [
            {column.key: getattr(row, column.key) for column in Webhook.__mapper__.column_attrs}
            for row in session.scalars(
                select(Webhook).where(Webhook.account_id == account.name).order_by(Webhook.id)
            )
        ]
        attempt_ids = list(
            session.scalars(
                select(DeliveryAttempt.id).where(DeliveryAttempt.account_id == account.name)
            )
        )
    return {
        "webhooks": webhooks,
        "attempts": sorted(attempt_ids),
        "queues": admin.queue_depths(account.webhook_id),
        "received": len(receiver.requests),
    }


def check_no_leak(response: httpx.Response, caller: Caller, other: Account) -> None:
    """No answer to ``caller`` shows ``other``'s data (a 404 may echo the id asked for)."""
    echoed = {other.webhook_id, other.log_id} if response.status_code >= 400 else set()
    shown = [marker for marker in other.private if marker in response.text and marker not in echoed]
    assert not shown, f"{caller} saw {other.name}'s {shown} in {response.request.url}"


@pytest.fixture
def pages(api: TestClient) -> Iterator[TestClient]:
    """A client on the same app that shows redirects instead of following them."""
    with TestClient(api.app, follow_redirects=False) as client:
        yield client


def test_every_route_is_in_the_matrix(api: TestClient) -> None:
    routes = app_routes(api.app)
    missing = sorted(routes - ROUTES.keys())
    stale = sorted(ROUTES.keys() - routes)
    assert not missing, f"routes with no entry in ROUTES (say how to call them): {missing}"
    assert not stale, f"ROUTES entries for routes that no longer exist: {stale}"


def test_tenant_isolation_matrix(
    api: TestClient,
    pages: TestClient,
    engine: Engine,
    broker_admin: BrokerAdmin,
    receiver: Receiver,
    acme: Keys,
    globex: Keys,
) -> None:
    # Given two accounts, each with a webhook and an attempt
    owner = make_account(api, engine, acme, receiver)
    other = make_account(api, engine, globex, receiver)
    routes = sorted(app_routes(api.app))
    before = snapshot(engine, broker_admin, owner, receiver)
    on_owner = owner.target(receiver.url)
    checked = 0

    # When everyone but acme's admin calls every route on acme's ids
    strangers: list[Caller | None] = [None, owner.viewer, other.admin, other.viewer]
    for caller in strangers:
        for key in routes:
            call = ROUTES[key]
            response = send(pages, key, call, caller, on_owner)
            wanted = expected_status(key[1], call, caller, owner.name)
            # Then each gets what its key allows: 401/sign-in, 403, 404, or its own data
            assert response.status_code == wanted, (
                f"{caller or 'no key'} {key}: {response.status_code}, wanted {wanted}:"
                f" {response.text[:300]}"
            )
            if caller is None and call.access != "public" and key[1].startswith("/ui"):
                assert response.headers["location"] == SIGN_IN_PATH
            if caller is not None:
                check_no_leak(response, caller, other if caller.account == owner.name else owner)
            checked += 1

    # and acme's webhooks, attempts, queues and receiver are as they were
    assert snapshot(engine, broker_admin, owner, receiver) == before

    # and globex's lists never show acme's items, nor acme's globex's
    for caller, stranger in ((other.viewer, owner), (owner.viewer, other)):
        listed = pages.get("/v1/webhooks", headers={"Authorization": f"Bearer {caller.key}"})
        ids = {item["id"] for item in listed.json()["items"]}
        assert stranger.webhook_id not in ids
        assert (owner if stranger is other else other).webhook_id in ids

    # When acme's admin calls every route, each on a webhook and attempt of its own
    for key in routes:
        call = ROUTES[key]
        hook = create(api, acme, url=receiver.url, name=f"owner-{key[0]}-{key[1]}"[:200])
        target = Target(hook["id"], add_attempt(engine, hook, owner.name), receiver.url)
        response = send(pages, key, call, owner.admin, target)
        # Then the route does its job: the 404s above were about the account, not the call
        wanted = expected_status(key[1], call, owner.admin, owner.name)
        assert response.status_code == wanted, (
            f"acme:admin {key}: {response.status_code}, wanted {wanted}: {response.text[:300]}"
        )
        check_no_leak(response, owner.admin, other)
        checked += 1

    principals = len(strangers) + 1
    print(
        f"tenancy matrix: {len(routes)} routes x {principals} principals"
        f" (no key, acme admin/viewer, globex admin/viewer): {checked} calls checked"
    )
    assert checked == len(routes) * principals
