"""Health, readiness, metrics and the OpenAPI description."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from router.broker import BrokerAdmin
from router.crypto import SecretCipher
from router.db import make_engine
from router.settings import Settings
from tests.config.conftest import DEAD_BROKER_URL, make_client


def test_healthz(offline_api: TestClient) -> None:
    # Given an app whose broker is down
    # When liveness is asked
    response = offline_api.get("/healthz")
    # Then it is alive anyway
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_everything_answers(api: TestClient) -> None:
    # Given a real broker and database
    # When readiness is asked
    response = api.get("/readyz")
    # Then it is ready
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


def test_readyz_when_the_broker_is_down(offline_api: TestClient) -> None:
    # Given an app whose broker is unreachable
    # When readiness is asked
    response = offline_api.get("/readyz")
    # Then it is not ready and says the broker is why
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unavailable"}


def test_readyz_when_the_database_is_down(
    settings: Settings, cipher: SecretCipher, tmp_path: Path
) -> None:
    # Given an app whose database cannot be opened, and a live broker
    engine: Engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'router.db'}", cipher)
    admin = BrokerAdmin(settings.amqp_url.get_secret_value())
    with make_client(settings, engine, admin) as api:
        # When readiness is asked
        response = api.get("/readyz")
    engine.dispose()
    # Then it is not ready and says the database is why
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable", "broker": "ok"}


def test_readyz_when_both_are_down(database_url: str, cipher: SecretCipher, tmp_path: Path) -> None:
    # Given an app with neither
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'router.db'}", cipher)
    settings = Settings(database_url=SecretStr(database_url))
    with make_client(settings, engine, BrokerAdmin(DEAD_BROKER_URL)) as api:
        # When readiness is asked
        response = api.get("/readyz")
    engine.dispose()
    # Then both are reported
    assert response.status_code == 503
    assert response.json()["database"] == response.json()["broker"] == "unavailable"


def test_metrics_are_prometheus_text(offline_api: TestClient) -> None:
    # Given the app
    # When metrics are scraped
    response = offline_api.get("/metrics")
    # Then they are Prometheus text holding the router's metrics
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "webhook_router_deliveries_in_flight" in response.text


def test_openapi_describes_every_route_and_its_errors(offline_api: TestClient) -> None:
    # Given the app
    # When its OpenAPI description is read
    spec = offline_api.get("/openapi.json").json()
    paths = spec["paths"]
    # Then it has every route, the error model on every /v1 operation, and our responses
    assert spec["info"]["title"] == "webhook-router"
    assert set(paths) == {
        "/v1/event-types",
        "/v1/webhooks",
        "/v1/webhooks/{webhook_id}",
        "/v1/webhooks/{webhook_id}/logs",
        "/v1/webhooks/{webhook_id}/test",
        "/v1/webhooks/{webhook_id}/rotate-secret",
        "/v1/logs/{log_id}",
        "/v1/logs/{log_id}/replay",
        "/v1/webhooks/{webhook_id}/dead-letters/replay",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    error_ref = "#/components/schemas/ErrorResponse"
    for path, operations in paths.items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)
            # 401 everywhere; 422 wherever there is input (tests/config/test_openapi.py has
            # the exact codes per route)
            for status in {"401", "422"} & set(operation["responses"]):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (method, path, status)
    assert set(paths["/v1/webhooks/{webhook_id}"]["delete"]["responses"]) >= {"204", "403", "404"}
    created = paths["/v1/webhooks"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/WebhookCreated"}
    single = paths["/v1/webhooks/{webhook_id}"]["get"]["responses"]["200"]["content"]
    assert single["application/json"]["schema"] == {"$ref": "#/components/schemas/WebhookDetail"}
    replay_log = paths["/v1/logs/{log_id}/replay"]["post"]["responses"]
    assert set(replay_log) >= {"202", "403", "404", "409", "503"}
    replay_dead = paths["/v1/webhooks/{webhook_id}/dead-letters/replay"]["post"]["responses"]
    assert set(replay_dead) >= {"200", "403", "404", "503"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "bearer" in str(spec["components"]["securitySchemes"]).lower()
