"""Fixtures for the config API: the app on the real broker and database, and API keys."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pika
import pika.exceptions
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.app import create_app
from config.auth import create_api_key
from router.broker import BrokerAdmin
from router.settings import Settings
from router.topology import CONTROL_EXCHANGE
from tests.helpers import declare_shared

with warnings.catch_warnings():
    # starlette asks for httpx2 instead of httpx; the test client works the same with both.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

Headers = dict[str, str]
# Nothing listens on port 1: connecting fails at once.
DEAD_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/"


@dataclass(frozen=True)
class Keys:
    """Authorization headers for an admin and a viewer of one account."""

    account_id: str
    admin: Headers
    viewer: Headers


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the test database."""
    return sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def broker_admin(settings: Settings) -> BrokerAdmin:
    """An admin client on the private vhost, the shared exchanges already declared."""
    return declare_shared(settings)


def make_client(settings: Settings, engine: Engine, admin: BrokerAdmin) -> TestClient:
    """A test client on a fresh app."""
    return TestClient(create_app(settings, engine, admin))


@pytest.fixture
def api(settings: Settings, engine: Engine, broker_admin: BrokerAdmin) -> Iterator[TestClient]:
    """The config API (private targets allowed), served in-process."""
    with make_client(settings, engine, broker_admin) as client:
        yield client


@pytest.fixture
def offline_api(database_url: str, engine: Engine) -> Iterator[TestClient]:
    """The config API with no broker behind it, for requests that never reach RabbitMQ."""
    settings = Settings(database_url=SecretStr(database_url), allow_private_targets=True)
    with make_client(settings, engine, BrokerAdmin(DEAD_BROKER_URL)) as client:
        yield client


def webhook_body(**overrides: Any) -> dict[str, Any]:
    """A valid creation body, with some fields replaced."""
    body: dict[str, Any] = {
        "name": "Invoices",
        "url": "http://127.0.0.1:9/hooks",
        "events": ["delivery.done"],
        "sites": ["paris"],
    }
    body.update(overrides)
    return body


def create(api: TestClient, keys: Keys, **overrides: Any) -> dict[str, Any]:
    """Create a webhook as the account's admin and return its JSON."""
    response = api.post("/v1/webhooks", json=webhook_body(**overrides), headers=keys.admin)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _keys(sessions: sessionmaker[Session], account_id: str) -> Keys:
    def bearer(role: str) -> Headers:
        return {"Authorization": f"Bearer {create_api_key(sessions, account_id, role)}"}

    return Keys(account_id, admin=bearer("admin"), viewer=bearer("viewer"))


@pytest.fixture
def acme(sessions: sessionmaker[Session]) -> Keys:
    """Keys of the account ``acme``."""
    return _keys(sessions, "acme")


@pytest.fixture
def globex(sessions: sessionmaker[Session]) -> Keys:
    """Keys of another account, ``globex``."""
    return _keys(sessions, "globex")


class Bus:
    """Publishes events and inspects queues over fresh pika connections, as upstream would."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        self._params = pika.URLParameters(amqp_url)
        self._exchange = exchange

    def publish(self, routing_key: str) -> None:
        """Publish a (confirmed, persistent) event under ``routing_key``."""
        connection = pika.BlockingConnection(self._params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                self._exchange,
                routing_key,
                b'{"id": "evt_test"}',
                pika.BasicProperties(content_type="application/json", delivery_mode=2),
            )
        finally:
            connection.close()

    def count(self, queue: str) -> int | None:
        """Messages ready in ``queue``, or None when the queue does not exist."""
        connection = pika.BlockingConnection(self._params)
        try:
            result = connection.channel().queue_declare(queue, passive=True)
            return int(result.method.message_count)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        finally:
            if connection.is_open:
                connection.close()


@pytest.fixture
def bus(settings: Settings, broker_admin: BrokerAdmin) -> Bus:
    """Upstream's view of the private vhost, the shared topology declared."""
    return Bus(settings.amqp_url.get_secret_value(), settings.exchange)


class ControlListener:
    """A worker's view of router.control: the webhook ids it is told about."""

    def __init__(self, amqp_url: str) -> None:
        self._connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = self._connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, CONTROL_EXCHANGE)
        channel.basic_consume(queue, self._on_message, auto_ack=True)
        self.heard: list[str] = []

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self.heard.append(orjson.loads(body)["webhook_id"])

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[str]:
        """The ids heard, once ``count`` arrived or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while len(self.heard) < count and time.monotonic() < deadline:
            self._connection.process_data_events(time_limit=0.1)
        return list(self.heard)

    def close(self) -> None:
        """Close the connection (the exclusive queue goes with it)."""
        self._connection.close()


@pytest.fixture
def control(settings: Settings, broker_admin: BrokerAdmin) -> Iterator[ControlListener]:
    """A listener on the control exchange, as every worker has."""
    listener = ControlListener(settings.amqp_url.get_secret_value())
    yield listener
    listener.close()
