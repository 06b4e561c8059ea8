"""Request and response bodies of the config API (pydantic v2)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from router.events import CATALOG, EVENT_TYPES, ID_PATTERN

MAX_SITES = 100
# RFC 9110 token characters: what a header name may be made of.
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")
_ROW_ID = re.compile(r"^[a-z]{1,8}_[0-9a-f]{1,40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Headers the router sets itself (or the HTTP client owns): a webhook may not override them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "host",
        "content-length",
        "connection",
        "transfer-encoding",
    }
)
AUTH_MODES = ("none", "basic", "bearer", "header")
# Discriminated unions by field name: pydantic puts the chosen tag in error paths.
UNION_TAGS: dict[str, tuple[str, ...]] = {"auth": AUTH_MODES}


def _check_url(value: str) -> str:
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an absolute http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must have a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials; use auth instead")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


def _check_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type {value!r}; see GET /v1/event-types")
    return value


def _check_site(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise ValueError("site ids are 1 to 64 letters, digits, '_' or '-'")
    return value


def encode_cursor(last_id: str) -> str:
    """The opaque ``next_cursor`` continuing after the row ``last_id``."""
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The row id inside a cursor; ValueError when it is not one of ours."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor; pass next_cursor from the previous page") from None
    if not _ROW_ID.match(raw):
        raise ValueError("invalid cursor; pass next_cursor from the previous page")
    return raw


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_header_name(value: str) -> str:
    if not _HEADER_TOKEN.match(value):
        raise ValueError("must be a valid HTTP header name")
    if value.lower() in RESERVED_HEADERS:
        raise ValueError(f"{value!r} is set by the router and cannot be overridden")
    return value


def _check_header_value(value: str) -> str:
    if _CONTROL.search(value.replace("\t", "")):
        raise ValueError("must not contain control characters")
    return value


def _check_username(value: str) -> str:
    if ":" in value:
        raise ValueError("must not contain ':'")
    return _check_header_value(value)


def _check_no_control(value: str) -> str:
    # Names are shown on pages and in logs, and PostgreSQL cannot store NUL at all.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_check_no_control),
    Field(json_schema_extra={"pattern": "^[^\\u0000-\\u001f\\u007f]*$"}),
]
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2048),
    AfterValidator(_check_url),
]
# The JSON schemas spell out what the validators accept (the catalog, the id alphabet), so
# clients and generated tests know it; the validators keep their clearer messages.
EventName = Annotated[
    str,
    AfterValidator(_check_event_type),
    WithJsonSchema({"type": "string", "enum": [t.type for t in CATALOG]}),
]
SiteId = Annotated[
    str,
    AfterValidator(_check_site),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
]
EventList = Annotated[list[EventName], Field(min_length=1), AfterValidator(_dedupe)]
SiteList = Annotated[list[SiteId], Field(max_length=MAX_SITES), AfterValidator(_dedupe)]
Cursor = Annotated[
    str | None,
    Query(max_length=300, description="`next_cursor` of the previous page"),
    AfterValidator(decode_cursor),
]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
MaxAttempts = Annotated[
    int | None,
    Field(
        ge=1,
        description="Attempts before dead-lettering, at most the retry schedule's length + 1;"
        " null follows the schedule",
    ),
]
CircuitState = Literal["closed", "open", "half_open"]
Credential = Annotated[Secret, AfterValidator(_check_header_value)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthNone(_Strict):
    """No authentication: the signature alone proves the sender."""

    mode: Literal["none"] = "none"

    def credentials(self) -> dict[str, str]:
        """What the worker needs to authenticate (stored, never returned)."""
        return {}


class AuthBasic(_Strict):
    """HTTP Basic authentication."""

    mode: Literal["basic"]
    username: Annotated[Secret, AfterValidator(_check_username)]
    password: Credential

    def credentials(self) -> dict[str, str]:
        """What the worker needs to authenticate (stored, never returned)."""
        return {"username": self.username, "password": self.password}


class AuthBearer(_Strict):
    """``Authorization: Bearer <token>``."""

    mode: Literal["bearer"]
    token: Credential

    def credentials(self) -> dict[str, str]:
        """What the worker needs to authenticate (stored, never returned)."""
        return {"token": self.token}


class AuthHeader(_Strict):
    """A custom header carrying a credential."""

    mode: Literal["header"]
    name: Annotated[str, AfterValidator(_check_header_name)]
    value: Credential

    def credentials(self) -> dict[str, str]:
        """What the worker needs to authenticate (stored, never returned)."""
        return {"name": self.name, "value": self.value}


AuthIn = Annotated[AuthNone | AuthBasic | AuthBearer | AuthHeader, Field(discriminator="mode")]


class WebhookCreate(_Strict):
    """``POST /v1/webhooks``: a new subscription."""

    name: Name
    url: Url
    auth: AuthIn = Field(default_factory=AuthNone)
    events: EventList
    sites: SiteList = Field(default_factory=list, description="[] means every site")
    include_order: bool = False
    enabled: bool = True
    max_attempts: MaxAttempts = None


# PATCH fields that may be omitted but not null (None in Python only means "omitted").
_NOT_NULL_IN_PATCH = ("name", "url", "auth", "events", "sites", "include_order", "enabled")


def _document_not_null(schema: dict[str, Any]) -> None:
    """Drop ``null`` from the JSON schema of the fields that refuse it (it said they took it)."""
    properties = schema.get("properties", {})
    for name in _NOT_NULL_IN_PATCH:
        prop = properties.get(name)
        if prop is None or "anyOf" not in prop:
            continue
        kept = [option for option in prop.pop("anyOf") if option != {"type": "null"}]
        prop.pop("default", None)
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept


class WebhookUpdate(_Strict):
    """``PATCH /v1/webhooks/{id}``: only the fields given change; ``auth`` is replaced whole."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_not_null)

    name: Name | None = None
    url: Url | None = None
    auth: AuthIn | None = None
    events: EventList | None = None
    sites: SiteList | None = None
    include_order: bool | None = None
    enabled: bool | None = Field(
        default=None, description="true also clears disabled_reason and closes the circuit"
    )
    max_attempts: MaxAttempts = None

    @field_validator(*_NOT_NULL_IN_PATCH, mode="before")
    @classmethod
    def _reject_null(cls, value: Any) -> Any:
        # Omit a field to keep it; null means nothing for these (max_attempts: the default).
        if value is None:
            raise ValueError("may not be null; omit the field to leave it unchanged")
        return value


class AuthNoneOut(BaseModel):
    """No authentication."""

    mode: Literal["none"] = "none"


class AuthBasicOut(BaseModel):
    """Basic authentication; the password is write-only."""

    mode: Literal["basic"] = "basic"
    username: str


class AuthBearerOut(BaseModel):
    """Bearer authentication; the token is write-only."""

    mode: Literal["bearer"] = "bearer"


class AuthHeaderOut(BaseModel):
    """Custom header authentication; the value is write-only."""

    mode: Literal["header"] = "header"
    name: str


AuthOut = Annotated[
    AuthNoneOut | AuthBasicOut | AuthBearerOut | AuthHeaderOut, Field(discriminator="mode")
]


class WebhookOut(BaseModel):
    """A webhook as the API shows it: credentials and secret left out."""

    id: str
    name: str
    url: str
    auth: AuthOut
    events: list[str]
    sites: list[str]
    include_order: bool
    enabled: bool
    disabled_reason: str | None = Field(description="Why the router disabled it, if it did")
    max_attempts: int | None
    circuit: CircuitState = Field(description="open: deliveries paused after repeated failures")
    circuit_retry_at: datetime | None = Field(description="When the next probe may run")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when deliveries are also signed with the secret the last rotation"
        " replaced; null when no previous secret is valid"
    )
    created_at: datetime
    updated_at: datetime


class Backlog(BaseModel):
    """Messages waiting in the webhook's queues."""

    pending: int = Field(description="Ready for delivery (not counting those in flight)")
    dead_letters: int = Field(description="Parked after their last attempt failed")


class WebhookDetail(WebhookOut):
    """One webhook with its backlog (null when the broker cannot be asked)."""

    backlog: Backlog | None


class WebhookCreated(WebhookOut):
    """The creation response: the only time the signing secret is shown."""

    secret: str


class WebhookRotated(WebhookOut):
    """The rotation response: the new signing secret, shown this once."""

    secret: str


class WebhookList(BaseModel):
    """A page of webhooks, oldest first."""

    items: list[WebhookOut]
    next_cursor: str | None


class EventTypeOut(BaseModel):
    """One catalog entry."""

    type: str
    category: str
    label: str


class EventTypeList(BaseModel):
    """The event catalog and its categories, in display order."""

    items: list[EventTypeOut]
    categories: list[str]


Trigger = Literal["event", "manual", "test"]


class LogEntry(BaseModel):
    """One delivery attempt."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    attempt: int
    trigger: Trigger = Field(
        description="event: published upstream; manual: a replay; test: a test send"
    )
    status: Literal["succeeded", "failed"]
    outcome: str = Field(
        description="delivered, retrying, dead_lettered, paused (a failed circuit probe) or"
        " failed (a failed test send, never retried)"
    )
    response_status: int | None
    error: str | None
    duration_ms: int
    created_at: datetime
    next_retry_at: datetime | None


class RequestSent(BaseModel):
    """The request as sent, authentication headers redacted."""

    url: str
    headers: dict[str, str]
    body: str


class ResponseReceived(BaseModel):
    """The response status and an excerpt of its body (null when none was read)."""

    status: int | None
    body: str | None


class LogDetail(LogEntry):
    """One delivery attempt with the request sent and the response received."""

    request: RequestSent
    response: ResponseReceived


class LogCounts(BaseModel):
    """Attempts matching every filter but ``status`` and the cursor, by status."""

    succeeded: int
    failed: int


class LogList(BaseModel):
    """A page of attempts, newest first, and how many match in all by status."""

    items: list[LogEntry]
    next_cursor: str | None
    counts: LogCounts


class FieldError(BaseModel):
    """One offending field and what is wrong with it."""

    field: str | None
    message: str


class ErrorDetail(BaseModel):
    """What went wrong, and which field (null when no single field is at fault)."""

    message: str
    field: str | None
    errors: list[FieldError] | None = Field(
        default=None, description="Every offending field (on 422 only)"
    )


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorDetail
