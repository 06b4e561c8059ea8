"""Secrets at rest on the real databases: stored encrypted, read back, keys rotated."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from consumers.signing import generate_secret
from router import crypto
from router.cli import main
from router.crypto import SecretCipher, generate_key, install_cipher, parse_keys
from router.errors import EncryptionKeyError
from router.models import Webhook, new_id
from router.reencrypt import encrypted_columns, reencrypt_webhooks

PASSWORD = "hunter2-basic-password"
TOKEN = "bearer-t0k3n-value"
HEADER_VALUE = "custom-header-s3cret"


def cipher_of(*keys: str) -> SecretCipher:
    return SecretCipher(parse_keys(",".join(keys)), source="ROUTER_ENCRYPTION_KEYS")


@pytest.fixture
def restore_cipher(cipher: SecretCipher) -> Iterator[None]:
    """Tests that install other keys leave the run's key installed afterwards."""
    yield
    install_cipher(cipher)


def add_webhook(engine: Engine, auth_mode: str, credentials: dict[str, Any]) -> Webhook:
    webhook = Webhook(
        id=new_id("wh"),
        account_id="acme",
        name="n",
        url="https://example.com/hooks",
        auth_mode=auth_mode,
        auth_credentials=credentials,
        secret=generate_secret(),
        previous_secret=generate_secret(),
        events=["delivery.done"],
    )
    with Session(engine, expire_on_commit=False) as session:
        session.add(webhook)
        session.commit()
    return webhook


def read(engine: Engine, webhook_id: str) -> Webhook:
    with Session(engine) as session:
        webhook = session.get(Webhook, webhook_id)
    assert webhook is not None
    return webhook


def raw_rows(engine: Engine) -> str:
    """Every column of every webhook row, as the database holds it."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM webhooks")).all()
    return repr([tuple(row) for row in rows])


def test_the_webhooks_table_holds_no_secret_nor_credential(engine: Engine) -> None:
    # Given webhooks of every authentication mode, each with a current and a previous secret
    hooks = [
        add_webhook(engine, "basic", {"username": "ada", "password": PASSWORD}),
        add_webhook(engine, "bearer", {"token": TOKEN}),
        add_webhook(engine, "header", {"name": "X-Api-Key", "value": HEADER_VALUE}),
    ]
    # When the table is read with plain SQL
    stored = raw_rows(engine)
    # Then no secret, password, token or header value shows
    for secret in (PASSWORD, TOKEN, HEADER_VALUE, *(h.secret for h in hooks)):
        assert secret not in stored
    assert "whsec_" not in stored
    # And the model still reads every one of them back
    assert read(engine, hooks[0].id).auth_credentials["password"] == PASSWORD
    assert read(engine, hooks[1].id).auth_credentials == {"token": TOKEN}
    assert (read(engine, hooks[2].id).secret, read(engine, hooks[2].id).previous_secret) == (
        hooks[2].secret,
        hooks[2].previous_secret,
    )


def test_the_same_secret_encrypts_differently_each_time(cipher: SecretCipher) -> None:
    # Given one plaintext
    # When it is encrypted twice
    # Then the tokens differ (Fernet's random IV) and both decrypt to it
    first, second = cipher.encrypt("whsec_same"), cipher.encrypt("whsec_same")
    assert first != second
    assert cipher.decrypt(first) == cipher.decrypt(second) == "whsec_same"


@pytest.mark.usefixtures("restore_cipher")
def test_a_wrong_key_is_a_clear_error_not_garbage(engine: Engine) -> None:
    # Given a webhook stored under the run's key
    hook = add_webhook(engine, "bearer", {"token": TOKEN})
    # When a process with another key reads it
    install_cipher(cipher_of(generate_key()))
    # Then it fails with an error naming the setting and the way out
    with pytest.raises(EncryptionKeyError) as caught:
        read(engine, hook.id)
    message = str(caught.value)
    assert "ROUTER_ENCRYPTION_KEYS" in message
    assert "secrets reencrypt" in message
    assert TOKEN not in message


def test_without_an_installed_key_encrypted_columns_refuse_to_work(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a process where no engine installed a key
    monkeypatch.setattr(crypto, "_installed", None)
    # When a webhook is written
    # Then it fails, rather than encrypting with some default key, and shows no secret
    with pytest.raises(StatementError) as caught:
        add_webhook(engine, "bearer", {"token": TOKEN})
    assert isinstance(caught.value.orig, EncryptionKeyError)
    assert "no encryption key is configured" in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.usefixtures("restore_cipher")
def test_rotation_old_key_still_decrypts_and_reencrypt_moves_rows(
    engine: Engine, cipher: SecretCipher, encryption_key: str
) -> None:
    # Given webhooks stored under the run's (old) key
    hooks = [
        add_webhook(engine, "basic", {"username": "ada", "password": PASSWORD}),
        add_webhook(engine, "bearer", {"token": TOKEN}),
    ]
    before = raw_rows(engine)
    # When a new key is put first, the old one kept after it
    new_key = generate_key()
    rotated = cipher_of(new_key, encryption_key)
    install_cipher(rotated)
    # Then rows under the old key still read
    assert read(engine, hooks[0].id).auth_credentials["password"] == PASSWORD
    # When every row is re-encrypted
    result = reencrypt_webhooks(engine, rotated)
    # Then each row was rewritten, and a second run has nothing left to do
    assert (result.webhooks, result.rewritten) == (2, 2)
    assert reencrypt_webhooks(engine, rotated).rewritten == 0
    assert raw_rows(engine) != before
    # And the new key alone reads them, the old one alone no longer does
    install_cipher(cipher_of(new_key))
    assert read(engine, hooks[1].id).auth_credentials == {"token": TOKEN}
    assert read(engine, hooks[0].id).secret == hooks[0].secret
    assert read(engine, hooks[0].id).previous_secret == hooks[0].previous_secret
    install_cipher(cipher)
    with pytest.raises(EncryptionKeyError):
        read(engine, hooks[0].id)


@pytest.fixture
def restore_log_levels() -> Iterator[None]:
    """The CLI quietens chatty libraries' loggers: give them back their levels after."""
    loggers = [logging.getLogger(name) for name in ("pika", "httpx")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.usefixtures("restore_cipher", "restore_log_levels")
def test_secrets_reencrypt_command(
    engine: Engine,
    database_url: str,
    encryption_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a webhook under the old key, and ROUTER_ENCRYPTION_KEYS with a new key first
    hook = add_webhook(engine, "bearer", {"token": TOKEN})
    new_key = generate_key()
    monkeypatch.setenv("ROUTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ROUTER_ENCRYPTION_KEYS", f"{new_key},{encryption_key}")
    # When `webhook-router secrets reencrypt` runs
    main(["secrets", "reencrypt"])
    # Then it says what it did, and the new key alone reads the row
    assert "re-encrypted 1 of 1 webhook(s)" in capsys.readouterr().out
    install_cipher(cipher_of(new_key))
    assert read(engine, hook.id).auth_credentials == {"token": TOKEN}


def test_every_secret_column_is_encrypted() -> None:
    # Given the webhook model
    # When its encrypted columns are listed (what reencrypt rewrites)
    # Then they are the signing secrets and the credentials
    assert sorted(encrypted_columns()) == ["auth_credentials", "previous_secret", "secret"]
