"""Alembic migrations on the real databases: existing rows survive each upgrade."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, text

from router.schema import upgrade_database


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "router:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def test_0003_adds_the_previous_secret_to_existing_webhooks(engine: Engine) -> None:
    # Given a database at 0002 holding a webhook
    _migrate(engine, "downgrade", "0002")
    assert "previous_secret" not in {c["name"] for c in inspect(engine).get_columns("webhooks")}
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO webhooks (id, account_id, name, url, auth_mode, auth_credentials,"
                " secret, events, sites, include_order, enabled, created_at, updated_at)"
                " VALUES ('wh_1', 'acme', 'n', 'https://example.com', 'none', '{}', 'whsec_x',"
                " '[\"delivery.done\"]', '[]', false, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    # When it is upgraded to the latest schema
    upgrade_database(engine)
    # Then the webhook is kept, with no previous secret
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT secret, previous_secret, previous_secret_expires_at FROM webhooks")
        ).one()
    assert tuple(row) == ("whsec_x", None, None)
