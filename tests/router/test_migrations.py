"""Alembic migrations on the real databases: existing rows survive each upgrade."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, text
from sqlalchemy.orm import Session

from router.crypto import SecretCipher
from router.errors import EncryptionKeyError
from router.models import Base, DeliveryAttempt, Webhook
from router.schema import upgrade_database

PASSWORD = "p4ssw0rd-at-0003"
CREDENTIALS = {"username": "ada", "password": PASSWORD}


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "router:migrations")
    with engine.connect() as connection:  # as router.schema does: Alembic owns transactions
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def _insert_plaintext_webhook(engine: Engine, *, previous_secret: bool = False) -> None:
    """A webhook row as 0002/0003 stored it: secret and credentials in plaintext."""
    columns = "id, account_id, name, url, auth_mode, auth_credentials, secret"
    values = "'wh_1', 'acme', 'n', 'https://example.com', 'basic', :credentials, 'whsec_x'"
    if previous_secret:
        columns += ", previous_secret"
        values += ", 'whsec_old'"
    with engine.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO webhooks ({columns}, events, sites, include_order, enabled,"
                f" created_at, updated_at) VALUES ({values}, '[\"delivery.done\"]', '[]',"
                " false, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"credentials": json.dumps(CREDENTIALS)},
        )


def _raw_row(engine: Engine) -> tuple[str, str | None, Any]:
    """The stored columns (PostgreSQL hands a JSON column back parsed, SQLite as text)."""
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT secret, previous_secret, auth_credentials FROM webhooks")
        ).one()
    return (row[0], row[1], row[2])


def test_0003_adds_the_previous_secret_to_existing_webhooks(engine: Engine) -> None:
    # Given a database at 0002 holding a webhook
    _migrate(engine, "downgrade", "0002")
    assert "previous_secret" not in {c["name"] for c in inspect(engine).get_columns("webhooks")}
    _insert_plaintext_webhook(engine)
    # When it is upgraded to 0003
    _migrate(engine, "upgrade", "0003")
    # Then the webhook is kept, with no previous secret
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT secret, previous_secret, previous_secret_expires_at FROM webhooks")
        ).one()
    assert tuple(row) == ("whsec_x", None, None)


def test_0004_encrypts_existing_secrets_and_credentials(engine: Engine) -> None:
    # Given a database at 0003 holding a webhook with plaintext secrets and credentials
    _migrate(engine, "downgrade", "0003")
    _insert_plaintext_webhook(engine, previous_secret=True)
    assert "whsec_x" in _raw_row(engine)[0]
    # When it is upgraded to the latest schema
    upgrade_database(engine)
    # Then the model reads the same secrets and credentials back
    with Session(engine) as session:
        webhook = session.get(Webhook, "wh_1")
        assert webhook is not None
        assert (webhook.secret, webhook.previous_secret) == ("whsec_x", "whsec_old")
        assert webhook.auth_credentials == CREDENTIALS
    # And the columns themselves hold none of them
    stored = " ".join(str(value) for value in _raw_row(engine))
    for secret in ("whsec_x", "whsec_old", PASSWORD, "ada"):
        assert secret not in stored


def test_0004_downgrade_decrypts(engine: Engine) -> None:
    # Given a webhook encrypted by 0004
    _migrate(engine, "downgrade", "0003")
    _insert_plaintext_webhook(engine, previous_secret=True)
    upgrade_database(engine)
    # When the schema is downgraded to 0003
    _migrate(engine, "downgrade", "0003")
    # Then the columns hold plaintext again
    secret, previous_secret, credentials = _raw_row(engine)
    assert (secret, previous_secret) == ("whsec_x", "whsec_old")
    assert (json.loads(credentials) if isinstance(credentials, str) else credentials) == CREDENTIALS


def test_0004_refuses_tokens_of_another_key(engine: Engine, cipher: SecretCipher) -> None:
    # Given a database at 0003 whose secret is already a token, of a key not configured
    _migrate(engine, "downgrade", "0003")
    _insert_plaintext_webhook(engine)
    foreign = SecretCipher([b"x" * 43 + b"="], source="another deployment's key")
    with engine.begin() as connection:
        connection.execute(text("UPDATE webhooks SET secret = :t"), {"t": foreign.encrypt("s")})
    # When it is upgraded
    # Then the migration stops, naming the row, rather than encrypting a token twice
    with pytest.raises(EncryptionKeyError, match="wh_1"):
        upgrade_database(engine)


def _attempt_indexes(engine: Engine) -> dict[str, list[str]]:
    return {
        str(index["name"]): [str(column) for column in index["column_names"]]
        for index in inspect(engine).get_indexes("delivery_attempts")
    }


def test_the_migrations_build_the_models_schema(engine: Engine) -> None:
    # Given a database migrated to the latest schema (the fixture's)
    # When Alembic compares it with the models
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # Then tables, columns and indexes agree (column types are each backend's business:
    # SQLite reads a Float back as FLOAT, PostgreSQL as DOUBLE PRECISION)
    assert [d for d in differences if not (isinstance(d, list) and d[0][0] == "modify_type")] == []


def test_0005_puts_event_type_into_the_status_index(engine: Engine) -> None:
    # Given a database at 0004 holding an attempt
    _migrate(engine, "downgrade", "0004")
    assert _attempt_indexes(engine) == {
        "ix_attempts_webhook_id": ["webhook_id", "id"],
        "ix_attempts_webhook_status_id": ["webhook_id", "status", "id"],
    }
    with engine.begin() as connection:
        connection.execute(
            insert(DeliveryAttempt),
            {
                "id": "att_1",
                "webhook_id": "wh_1",
                "account_id": "acme",
                "event_id": "evt_1",
                "event_type": "delivery.done",
                "attempt": 1,
                "status": "failed",
                "outcome": "retrying",
                "duration_ms": 3,
                "request_url": "https://example.com",
                "request_headers": {},
                "request_body": "{}",
            },
        )
    # When it is upgraded to the latest schema
    upgrade_database(engine)
    # Then the status index ends with the event type, and the attempt is still there
    assert _attempt_indexes(engine) == {
        "ix_attempts_webhook_id": ["webhook_id", "id"],
        "ix_attempts_webhook_status_id_type": ["webhook_id", "status", "id", "event_type"],
    }
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT event_type FROM delivery_attempts")) == (
            "delivery.done"
        )
    # And a downgrade brings the old index back
    _migrate(engine, "downgrade", "0004")
    assert "ix_attempts_webhook_status_id" in _attempt_indexes(engine)
