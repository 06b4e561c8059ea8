"""Database tables: API keys, webhooks, and the log of delivery attempts."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from router.crypto import Encrypted, EncryptedJSON


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; all are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def as_utc_or_none(moment: datetime | None) -> datetime | None:
    """``as_utc`` that lets None through."""
    return None if moment is None else as_utc(moment)


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time: prefix, 16 hex digits of ns, 8 random."""
    return f"{prefix}_{time.time_ns():016x}{os.urandom(4).hex()}"


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}  # noqa: RUF012


class ApiKey(Base):
    """A hashed API key belonging to one account, with a role."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Webhook(Base):
    """A subscription: where to POST which events of which sites, and how to authenticate."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    auth_mode: Mapped[str] = mapped_column(String(16), default="none")
    # Credentials and signing secrets are stored as Fernet tokens (router/crypto.py):
    # attributes hold plaintext, the database never does.
    auth_credentials: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON(), default=dict)
    secret: Mapped[str] = mapped_column(Encrypted())
    # The secret a rotation replaced: still signed with until it expires, so receivers
    # can switch to the new one without dropping a delivery.
    previous_secret: Mapped[str | None] = mapped_column(Encrypted(), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    events: Mapped[list[str]] = mapped_column()
    sites: Mapped[list[str]] = mapped_column(default=list)
    include_order: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The circuit breaker lives here, not in a worker, so every worker agrees on it.
    circuit_state: Mapped[str] = mapped_column(String(16), default="closed")
    circuit_opened_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    circuit_retry_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    circuit_cooldown_s: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class DeliveryAttempt(Base):
    """One HTTP attempt to deliver one event to one webhook, whatever its outcome."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        # "attempts of webhook X, newest first", optionally only failures: both index-only
        # range scans, since ids sort by creation time. event_type, last, lets the logs'
        # counts by status (of one type or all) read this index alone (migration 0005).
        Index("ix_attempts_webhook_id", "webhook_id", "id"),
        Index("ix_attempts_webhook_status_id_type", "webhook_id", "status", "id", "event_type"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16), default="event")
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    request_url: Mapped[str] = mapped_column(String(2048))
    request_headers: Mapped[dict[str, Any]] = mapped_column()
    request_body: Mapped[str] = mapped_column(Text)
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
