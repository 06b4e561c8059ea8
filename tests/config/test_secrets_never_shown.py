"""Signing secrets and credentials never reach logs, metrics, API reads or the table."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from router.crypto import SecretCipher, generate_key, install_cipher, parse_keys
from router.publisher import Publisher, new_event
from router.settings import Settings
from tests.config.conftest import Keys, create
from tests.helpers import WorkerThread, attempts, wait_until
from tests.receiver import Receiver

TOKEN = "bearer-t0k3n-never-logged"
PASSWORD = "basic-p4ss-never-logged"


def test_secrets_stay_out_of_logs_metrics_reads_and_the_table(
    api: TestClient,
    acme: Keys,
    settings: Settings,
    engine: Engine,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("", "httpx", "pika"):  # the root, and loggers the CLI may have quietened
        caplog.set_level(logging.DEBUG, logger=name)
    worker = WorkerThread(settings, engine).start()
    try:
        # Given a webhook with bearer auth, created, then its secret rotated
        created = create(
            api, acme, url=receiver.url + "/hook", auth={"mode": "bearer", "token": TOKEN}
        )
        rotated = api.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=acme.admin)
        assert rotated.status_code == 200, rotated.text
        # And another with basic auth, its password changed through PATCH
        other = create(api, acme, url=receiver.url + "/other", sites=["lyon"])
        patched = api.patch(
            f"/v1/webhooks/{other['id']}",
            headers=acme.admin,
            json={"auth": {"mode": "basic", "username": "ada", "password": PASSWORD}},
        )
        assert patched.status_code == 200, patched.text
        # When a test event is sent and a published event is delivered by a worker
        assert api.post(f"/v1/webhooks/{created['id']}/test", headers=acme.admin).is_success
        wait_until(lambda: worker.consumes(created["id"]), 10, "worker consuming the webhook")
        with Publisher(settings.amqp_url.get_secret_value(), settings.exchange) as publisher:
            publisher.publish(new_event("delivery.done", "acme", "paris", {"order": {}}))
        got = receiver.wait_for(2)
        wait_until(lambda: len(attempts(engine, created["id"])) == 2, 10, "both attempts logged")
    finally:
        worker.stop()
    # Then the receiver got the credentials and signatures (they were used)
    assert {r.headers["authorization"] for r in got} == {f"Bearer {TOKEN}"}
    secrets = [TOKEN, PASSWORD, created["secret"], rotated.json()["secret"]]

    # And no log line of the API, the worker or any library shows a secret
    assert "rotate-secret" in caplog.text  # the requests were logged, at least by httpx
    for secret in secrets:
        assert secret not in caplog.text
    # And neither do the metrics
    metrics = api.get("/metrics")
    assert metrics.status_code == 200
    assert "webhook_router_deliveries_total" in metrics.text
    for secret in secrets:
        assert secret not in metrics.text
    # And neither do reads of the webhooks and their logs
    log_ids = [row.id for row in attempts(engine, created["id"])]
    reads = [
        api.get("/v1/webhooks", headers=acme.viewer),
        api.get(f"/v1/webhooks/{created['id']}", headers=acme.viewer),
        api.get(f"/v1/webhooks/{other['id']}", headers=acme.viewer),
        api.get(f"/v1/webhooks/{created['id']}/logs", headers=acme.viewer),
        *(api.get(f"/v1/logs/{log_id}", headers=acme.viewer) for log_id in log_ids),
    ]
    for response in reads:
        assert response.status_code == 200, response.text
        for secret in secrets:
            assert secret not in response.text
    # And neither does the webhooks table, read with plain SQL
    with engine.connect() as connection:
        stored = repr(connection.execute(text("SELECT * FROM webhooks")).all())
    for secret in secrets:
        assert secret not in stored


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_wrong_encryption_key_is_an_error_that_names_the_setting(
    api: TestClient, acme: Keys, cipher: SecretCipher
) -> None:
    # Given a webhook stored under the run's key
    created = create(api, acme)
    # When the API process is configured with another key
    install_cipher(SecretCipher(parse_keys(generate_key()), "ROUTER_ENCRYPTION_KEYS"))
    try:
        response = api.get(f"/v1/webhooks/{created['id']}", headers=acme.admin)
    finally:
        install_cipher(cipher)
    # Then the answer says what the operator must fix, and shows no secret
    assert response.status_code == 500
    assert "ROUTER_ENCRYPTION_KEYS" in response.json()["error"]["message"]
    assert created["secret"] not in response.text
