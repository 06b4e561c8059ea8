"""Shared fixtures: a private RabbitMQ vhost and a fresh database per test, real receivers."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Engine

from router.db import make_engine
from router.schema import upgrade_database
from router.settings import Settings
from tests.receiver import Receiver

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RABBITMQ_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A private vhost on the real broker, deleted (with everything in it) afterwards."""
    vhost = f"wr-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{RABBITMQ_HOST}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, migrated database on each backend, removed afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'router.db'}"
        _migrate(url)
        yield url
        return
    name = f"wr_test_{uuid.uuid4().hex[:12]}"
    # No pool: a test may restart PostgreSQL, and the drop must not reuse a dead connection.
    admin = sqlalchemy.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str) -> None:
    engine = make_engine(url)
    upgrade_database(engine)
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(amqp_url: str, database_url: str) -> Settings:
    """Settings for a router on the private vhost and database, with a fast schedule."""
    return Settings(
        amqp_url=amqp_url,
        database_url=database_url,
        retry_schedule=(0.2, 0.4),
        retry_jitter=0.0,
        allow_private_targets=True,
        delivery_timeout_s=2.0,
        reconcile_interval_s=1.0,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records what it gets."""
    with Receiver() as server:
        yield server
