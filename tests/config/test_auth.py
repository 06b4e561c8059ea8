"""API keys: creation, hashed storage, and the bearer dependencies on a real app."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.auth import Principal, create_api_key, find_principal, hash_key
from router.models import ApiKey
from tests.config.conftest import Keys


def test_hash_key_is_sha256_hex() -> None:
    # Given a key
    key = "wr_example"
    # When it is hashed
    digest = hash_key(key)
    # Then it is the SHA-256 hex digest, the same every time
    assert digest == hashlib.sha256(b"wr_example").hexdigest()
    assert hash_key(key) == digest


def test_create_stores_only_the_hash(sessions: sessionmaker[Session]) -> None:
    # Given an account
    # When an admin key is created
    key = create_api_key(sessions, "acme", "admin")
    # Then the plaintext has the wr_ format and only its hash and prefix are stored
    assert key.startswith("wr_")
    assert len(key) == 3 + 43
    with sessions() as session:
        [row] = session.scalars(select(ApiKey)).all()
    assert row.key_hash == hash_key(key)
    assert row.prefix == key[:10]
    assert row.id.startswith("key_")
    assert (row.account_id, row.role) == ("acme", "admin")
    assert key not in {row.key_hash, row.prefix, row.id}


def test_keys_are_unique(sessions: sessionmaker[Session]) -> None:
    # Given two keys of the same account and role
    first = create_api_key(sessions, "acme", "viewer")
    second = create_api_key(sessions, "acme", "viewer")
    # When they are compared
    # Then they differ and each finds its own row
    assert first != second
    found = [find_principal(sessions, key) for key in (first, second)]
    assert all(isinstance(principal, Principal) for principal in found)
    assert found[0] != found[1]


def test_find_principal(sessions: sessionmaker[Session]) -> None:
    # Given a viewer key
    key = create_api_key(sessions, "globex", "viewer")
    # When it and an unknown key are looked up
    principal = find_principal(sessions, key)
    unknown = find_principal(sessions, key + "x")
    # Then the first gives its account and role, the second nothing
    assert principal is not None
    assert (principal.account_id, principal.role, principal.is_admin) == (
        "globex",
        "viewer",
        False,
    )
    assert principal.key_id.startswith("key_")
    assert unknown is None


@pytest.mark.parametrize(
    ("account_id", "role", "message"),
    [
        ("acme.eu", "admin", "account id"),
        ("", "admin", "account id"),
        ("a" * 65, "admin", "account id"),
        ("acme", "owner", "role"),
    ],
)
def test_create_rejects_bad_input(
    sessions: sessionmaker[Session], account_id: str, role: str, message: str
) -> None:
    # Given a bad account id or role
    # When a key is created
    # Then it is refused and nothing is stored
    with pytest.raises(ValueError, match=message):
        create_api_key(sessions, account_id, role)
    with sessions() as session:
        assert session.scalars(select(ApiKey)).all() == []


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wr_unknown", "Basic dXNlcjpwYXNz", "wr_no_scheme"],
)
def test_requests_without_a_valid_key_are_401(
    offline_api: TestClient, acme: Keys, authorization: str | None
) -> None:
    # Given a request with a missing, malformed or unknown key
    headers = {} if authorization is None else {"Authorization": authorization}
    # When it reads the catalog
    response = offline_api.get("/v1/event-types", headers=headers)
    # Then it is a 401 asking for a bearer key, in the error shape
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["field"] is None
    assert "API key" in response.json()["error"]["message"]


def test_valid_key_is_accepted(offline_api: TestClient, acme: Keys) -> None:
    # Given a viewer key
    # When it reads the catalog
    response = offline_api.get("/v1/event-types", headers=acme.viewer)
    # Then it is served
    assert response.status_code == 200


def test_viewer_key_cannot_write(offline_api: TestClient, acme: Keys) -> None:
    # Given a viewer key
    # When it tries to create a webhook
    response = offline_api.post(
        "/v1/webhooks",
        json={"name": "x", "url": "http://127.0.0.1/", "events": ["delivery.done"]},
        headers=acme.viewer,
    )
    # Then it is a 403 before anything else happens
    assert response.status_code == 403
    assert "admin" in response.json()["error"]["message"]
