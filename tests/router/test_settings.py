"""Settings read from ROUTER_* environment variables (router/settings.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from router.errors import ConfigurationError
from router.settings import DEFAULT_RETRY_SCHEDULE_S, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ROUTER_* variable of the calling shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("ROUTER_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    # Given an environment without ROUTER_* variables
    # When settings are loaded
    settings = load_settings()
    # Then the documented defaults apply
    assert settings.retry_schedule == (5, 30, 120, 600, 1800, 7200, 21600, 43200, 86400)
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE_S
    assert settings.max_attempts == 10
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@localhost:5672//"
    assert settings.database_url.get_secret_value().startswith("sqlite:")
    assert settings.allow_private_targets is False
    assert settings.exchange == "events"
    assert settings.secret_rotation_overlap_s == 86400
    assert settings.encryption_keys is None
    assert settings.encryption_key_file == Path("webhook-router.key")


def test_retry_schedule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given ROUTER_RETRY_SCHEDULE=5,30,120
    monkeypatch.setenv("ROUTER_RETRY_SCHEDULE", "5,30,120")
    # When settings are loaded
    settings = load_settings()
    # Then the schedule is those seconds, and a message gets four attempts
    assert settings.retry_schedule == (5.0, 30.0, 120.0)
    assert settings.max_attempts == 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.2, 0.4", (0.2, 0.4)), (" 1 ,2,", (1.0, 2.0)), ("0.05", (0.05,))],
)
def test_retry_schedule_accepts_fractions_and_spaces(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[float, ...]
) -> None:
    # Given a schedule with fractions of a second, spaces or a trailing comma
    monkeypatch.setenv("ROUTER_RETRY_SCHEDULE", value)
    # When settings are loaded
    settings = load_settings()
    # Then the delays are parsed as seconds
    assert settings.retry_schedule == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROUTER_RETRY_SCHEDULE", "abc"),
        ("ROUTER_RETRY_SCHEDULE", "5,thirty"),
        ("ROUTER_RETRY_SCHEDULE", "5,0"),
        ("ROUTER_RETRY_SCHEDULE", "5,-1"),
        ("ROUTER_RETRY_SCHEDULE", ",".join(["1"] * 51)),
        ("ROUTER_PREFETCH_PER_WEBHOOK", "0"),
        ("ROUTER_PREFETCH_PER_WEBHOOK", "many"),
        ("ROUTER_ALLOW_PRIVATE_TARGETS", "maybe"),
        ("ROUTER_RETRY_JITTER", "1.5"),
        ("ROUTER_QUEUE_TYPE", "stream"),
        ("ROUTER_DELIVERY_TIMEOUT_S", "0"),
        ("ROUTER_EXCHANGE", "no spaces allowed"),
        ("ROUTER_LOG_LEVEL", "LOUD"),
        ("ROUTER_SECRET_ROTATION_OVERLAP_S", "-1"),
        ("ROUTER_SECRET_ROTATION_OVERLAP_S", str(30 * 24 * 3600 + 1)),
        ("ROUTER_ENCRYPTION_KEYS", "not-a-fernet-key"),
        ("ROUTER_ENCRYPTION_KEYS", "ZmVybmV0LWtleS10b28tc2hvcnQ="),
        ("ROUTER_ENCRYPTION_KEYS", ""),
        ("ROUTER_ENCRYPTION_KEYS", " , "),
    ],
)
def test_a_bad_value_raises_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    # Given one malformed variable
    monkeypatch.setenv(name, value)
    # When settings are loaded
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    # Then the error names that variable
    assert name in str(caught.value)


@pytest.mark.parametrize("value", ["5,nan", "5,inf"])
def test_a_non_finite_retry_delay_is_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # Given a schedule with a delay that is not a finite number
    monkeypatch.setenv("ROUTER_RETRY_SCHEDULE", value)
    # When settings are loaded
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    # Then the error names ROUTER_RETRY_SCHEDULE
    assert "ROUTER_RETRY_SCHEDULE" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("1", True), ("false", False), ("0", False)]
)
def test_allow_private_targets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    # Given ROUTER_ALLOW_PRIVATE_TARGETS set
    monkeypatch.setenv("ROUTER_ALLOW_PRIVATE_TARGETS", value)
    # When settings are loaded
    # Then it is read as a boolean
    assert load_settings().allow_private_targets is expected


def test_amqp_url_from_the_environment_keeps_the_vhost(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an AMQP URL naming a vhost
    monkeypatch.setenv("ROUTER_AMQP_URL", "amqp://guest:guest@rabbit:5672/router-a")
    # When settings are loaded
    settings = load_settings()
    # Then the URL is kept whole
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@rabbit:5672/router-a"


def test_secrets_do_not_appear_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given URLs carrying passwords
    monkeypatch.setenv("ROUTER_AMQP_URL", "amqp://router:amqp-s3cr3t@rabbit:5672/prod")
    monkeypatch.setenv(
        "ROUTER_DATABASE_URL", "postgresql+psycopg://router:db-s3cr3t@pg:5432/router"
    )
    # When the settings are printed or dumped
    settings = load_settings()
    printed = [repr(settings), str(settings), repr(settings.model_dump())]
    # Then neither password shows, though the values are still reachable
    for text in printed:
        assert "amqp-s3cr3t" not in text
        assert "db-s3cr3t" not in text
    assert "amqp-s3cr3t" in settings.amqp_url.get_secret_value()
    assert "db-s3cr3t" in settings.database_url.get_secret_value()


def test_a_bad_value_error_does_not_print_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a password in the AMQP URL and another variable malformed
    monkeypatch.setenv("ROUTER_AMQP_URL", "amqp://router:amqp-s3cr3t@rabbit:5672/prod")
    monkeypatch.setenv("ROUTER_PREFETCH_PER_WEBHOOK", "0")
    # When settings are loaded
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    # Then the error does not carry the password
    assert "amqp-s3cr3t" not in str(caught.value)


def test_settings_are_frozen() -> None:
    # Given loaded settings
    settings = Settings()
    # When a field is assigned
    # Then it is refused (settings flow one way, from the environment)
    with pytest.raises(ValueError, match="frozen"):
        settings.exchange = "other"


def test_encryption_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two Fernet keys, comma-separated
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("ROUTER_ENCRYPTION_KEYS", f"{new},{old}")
    # When settings are loaded
    settings = load_settings()
    # Then both are kept, hidden from repr
    assert settings.encryption_keys is not None
    assert settings.encryption_keys.get_secret_value() == f"{new},{old}"
    assert new not in repr(settings)


def test_a_malformed_encryption_key_error_does_not_print_the_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a valid key followed by a malformed one
    good = Fernet.generate_key().decode()
    monkeypatch.setenv("ROUTER_ENCRYPTION_KEYS", f"{good},s3cr3t-but-not-a-key")
    # When settings are loaded
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    # Then the error says which key is wrong, and shows neither
    message = str(caught.value)
    assert "ROUTER_ENCRYPTION_KEYS" in message
    assert "key 2 of 2" in message
    assert good not in message
    assert "s3cr3t-but-not-a-key" not in message


def test_log_format_is_json_unless_text_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no ROUTER_LOG_FORMAT, then text, then an unknown format
    # When settings are loaded
    # Then JSON is the default, text is read, and anything else is rejected by name
    assert load_settings().log_format == "json"
    monkeypatch.setenv("ROUTER_LOG_FORMAT", "text")
    assert load_settings().log_format == "text"
    monkeypatch.setenv("ROUTER_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="ROUTER_LOG_FORMAT"):
        load_settings()


def test_log_retention_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no retention variables / Then 30 days, 5,000 rows a batch, one pass an hour
    settings = load_settings()
    assert settings.log_retention_days == 30
    assert settings.log_purge_batch_size == 5000
    assert settings.log_purge_interval_s == 3600
    # Given 0 days (keep forever) and a fraction of a day / Then both are read
    for days in ("0", "0.5"):
        monkeypatch.setenv("ROUTER_LOG_RETENTION_DAYS", days)
        assert load_settings().log_retention_days == float(days)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROUTER_LOG_RETENTION_DAYS", "-1"),
        ("ROUTER_LOG_RETENTION_DAYS", "inf"),
        ("ROUTER_LOG_RETENTION_DAYS", "nan"),
        ("ROUTER_LOG_PURGE_BATCH_SIZE", "0"),
        ("ROUTER_LOG_PURGE_BATCH_SIZE", "100001"),
        ("ROUTER_LOG_PURGE_INTERVAL_S", "0"),
        ("ROUTER_LOG_PURGE_INTERVAL_S", "inf"),
    ],
)
def test_bad_log_retention_settings_are_rejected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # Given a retention setting out of its range
    monkeypatch.setenv(variable, value)
    # When settings are loaded / Then the error names it
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()
