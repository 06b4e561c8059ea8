"""Shared fixtures: a private RabbitMQ vhost and a fresh database per test, real receivers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import Engine

from router.crypto import SecretCipher, generate_key, parse_keys
from router.db import make_engine
from router.schema import upgrade_database
from router.settings import Settings
from tests.receiver import Receiver
from tests.vhosts import VhostPool

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RABBITMQ_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1:5672")
# One encryption key for the run, made fresh so no test depends on a key file lying around.
TEST_ENCRYPTION_KEY = generate_key()


@pytest.fixture(scope="session", autouse=True)
def encryption_key() -> Iterator[str]:
    """The run's key, also in the environment: worker and serve subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROUTER_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)
        yield TEST_ENCRYPTION_KEY


@pytest.fixture(scope="session")
def cipher(encryption_key: str) -> SecretCipher:
    """The cipher of the run's key."""
    return SecretCipher(parse_keys(encryption_key), source="ROUTER_ENCRYPTION_KEYS")


@pytest.fixture(scope="session")
def vhosts() -> Iterator[VhostPool]:
    """Vhosts made and deleted in the background (rabbitmqctl is slow to start)."""
    pool = VhostPool()
    yield pool
    pool.close()


@pytest.fixture
def amqp_url(vhosts: VhostPool) -> Iterator[str]:
    """A private vhost on the real broker, deleted (with everything in it) afterwards."""
    vhost = vhosts.take()
    try:
        yield f"amqp://guest:guest@{RABBITMQ_HOST}/{vhost}"
    finally:
        vhosts.release(vhost)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, cipher: SecretCipher
) -> Iterator[str]:
    """A new, migrated database on each backend, removed afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'router.db'}"
        _migrate(url, cipher)
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
        _migrate(url, cipher)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str, cipher: SecretCipher) -> None:
    engine = make_engine(url, cipher)
    upgrade_database(engine)
    engine.dispose()


@pytest.fixture
def engine(database_url: str, cipher: SecretCipher) -> Iterator[Engine]:
    """An engine on the test database."""
    engine = make_engine(database_url, cipher)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(amqp_url: str, database_url: str, encryption_key: str) -> Settings:
    """Settings for a router on the private vhost and database, with a fast schedule."""
    return Settings(
        amqp_url=amqp_url,
        database_url=database_url,
        encryption_keys=SecretStr(encryption_key),
        retry_schedule=(0.2, 0.4),
        retry_jitter=0.0,
        allow_private_targets=True,
        delivery_timeout_s=2.0,
        reconcile_interval_s=1.0,
        shutdown_grace_s=10.0,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records what it gets."""
    with Receiver() as server:
        yield server
