"""Settings: the one place that reads the environment (prefix ``ROUTER_``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from router.crypto import parse_keys
from router.errors import ConfigurationError
from router.events import DEFAULT_MAX_EVENT_BYTES

MAX_DELAY_S = 4_000_000
# The longest a rotated-out signing secret may stay valid: receivers get a month to switch.
MAX_SECRET_ROTATION_OVERLAP_S = 30 * 24 * 3600
DEFAULT_RETRY_SCHEDULE_S = (5.0, 30.0, 120.0, 600.0, 1800.0, 7200.0, 21600.0, 43200.0, 86400.0)


class Settings(BaseSettings):
    """Every tunable of the router, read from ``ROUTER_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ROUTER_", frozen=True, extra="ignore")

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@localhost:5672//")
    database_url: SecretStr = SecretStr("sqlite:///webhook-router.db")
    exchange: str = Field(default="events", pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    queue_type: Literal["classic", "quorum"] = "classic"
    # The delay tiers, events.invalid and the other queues that exist once: few and hot,
    # so a cluster makes them quorum queues even when the per-webhook ones stay classic.
    # Unset: the same as queue_type.
    shared_queue_type: Literal["classic", "quorum"] | None = None

    retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE_S
    retry_jitter: float = Field(default=0.1, ge=0.0, lt=1.0)
    allow_private_targets: bool = False

    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1024)
    response_excerpt_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    delivery_timeout_s: float = Field(default=10.0, gt=0, le=300)
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"

    retry_after_max_s: float = Field(default=3600.0, ge=0)
    circuit_failure_threshold: int = Field(default=10, ge=1)
    circuit_cooldown_s: float = Field(default=30.0, gt=0)
    circuit_max_cooldown_s: float = Field(default=600.0, gt=0)
    secret_rotation_overlap_s: int = Field(default=86400, ge=0, le=MAX_SECRET_ROTATION_OVERLAP_S)
    # Fernet keys of the secrets at rest, comma-separated: the first encrypts, all decrypt.
    # Unset: the key in encryption_key_file (created on first use), for one machine.
    encryption_keys: SecretStr | None = None
    encryption_key_file: Path = Path("webhook-router.key")

    prefetch_per_webhook: int = Field(default=32, ge=1, le=1000)
    max_in_flight: int = Field(default=512, ge=1, le=100_000)
    log_batch_size: int = Field(default=500, ge=1, le=10_000)
    log_batch_wait_ms: float = Field(default=5.0, ge=0, le=10_000)
    # Attempt rows older than this are purged by the API process (0: keep forever), in
    # batches small enough that the workers' log commits never wait long behind one.
    log_retention_days: float = Field(default=30.0, ge=0, le=36_500, allow_inf_nan=False)
    log_purge_batch_size: int = Field(default=5000, ge=1, le=100_000)
    log_purge_interval_s: float = Field(default=3600.0, gt=0, le=7 * 86400, allow_inf_nan=False)
    reconcile_interval_s: float = Field(default=30.0, gt=0)
    # On SIGTERM a worker stops consuming and gives in-flight deliveries this long to
    # finish and be logged; what is still running then is left unacked for redelivery.
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)

    # A standalone worker's /metrics, /healthz and /readyz (0: none).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped and probed from outside its host
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    # json: one JSON object per line on stderr, for log pipelines; text: for a terminal.
    log_format: Literal["json", "text"] = "json"

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        """Accept ``5,30,120`` (seconds, comma-separated) as well as a sequence."""
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return tuple(float(p) for p in parts)
            except ValueError:
                raise ValueError("must be comma-separated seconds, e.g. 5,30,120") from None
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("at least one delay is needed")
        # RabbitMQ caps x-message-ttl at 2^32-1 ms (about 49 days).
        if not all(math.isfinite(d) and 0 < d < MAX_DELAY_S for d in value):
            raise ValueError(f"every delay must be a number of seconds in (0, {MAX_DELAY_S})")
        if len(value) > 50:
            raise ValueError("at most 50 retry delays")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _check_encryption_keys(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here, so a bad key stops start-up like any bad setting, before any row
        # is written with it. The message says which key, never what it holds.
        if value is not None:
            parse_keys(value.get_secret_value())
        return value

    @property
    def shared_queues_type(self) -> str:
        """The queue type of the shared queues (delay tiers, invalid, unrouted, orphaned)."""
        return self.shared_queue_type or self.queue_type

    @property
    def max_attempts(self) -> int:
        """First attempt plus one per scheduled retry."""
        return len(self.retry_schedule) + 1


def load_settings() -> Settings:
    """Read settings from the environment; a bad value raises ConfigurationError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"ROUTER_{field.upper()}: {error['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None
