"""The webhook form: what it shows, what it posts, and the API models it becomes.

The form never duplicates the API's rules: it builds the same pydantic models the JSON API
takes (WebhookCreate, WebhookUpdate) and turns their ValidationError, and the ApiError of
the API functions, into messages shown next to each field.
Stored credentials are never put in the form: secret fields always render empty, and on
edit a blank secret keeps the stored one (filled in here, server-side).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from config.errors import ApiError, field_path
from config.schemas import AUTH_MODES, WebhookOut
from router.events import CATALOG, CATEGORIES, EventType

Model = TypeVar("Model", bound=BaseModel)
FieldErrors = dict[str, str]
FORM_WIDE = "form"  # the key of an error no single field is at fault for

CATEGORY_TITLES = {
    "status": "Status",
    "planning": "Planning",
    "proof_of_delivery": "Proof of delivery",
    "other": "Other",
    "route": "Route",
    "notification": "Notification",
    "pickup_delivery": "Pickup and delivery",
}
AUTH_MODE_TITLES = {"none": "None", "basic": "Basic", "bearer": "Bearer token", "header": "Header"}
# Which credential of each mode is secret (write-only) and which may be shown again.
_SECRET_FIELDS = {"basic": "password", "bearer": "token", "header": "value"}


@dataclass(frozen=True, slots=True)
class EventGroup:
    """One category of the event picker."""

    category: str
    title: str
    types: tuple[EventType, ...]


EVENT_GROUPS: tuple[EventGroup, ...] = tuple(
    EventGroup(c, CATEGORY_TITLES.get(c, c), tuple(t for t in CATALOG if t.category == c))
    for c in CATEGORIES
)


@dataclass(slots=True)
class WebhookForm:
    """The form's fields as shown or as posted. Secrets are read from a post, never shown."""

    name: str = ""
    url: str = ""
    auth_mode: str = "none"
    username: str = ""
    header_name: str = ""
    events: list[str] = field(default_factory=list)
    sites: str = ""
    include_order: bool = False
    enabled: bool = True
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    header_value: str = field(default="", repr=False)

    def site_list(self) -> list[str]:
        """The comma-separated sites as a list (empty: every site)."""
        return [site.strip() for site in self.sites.split(",") if site.strip()]

    def secret(self, mode: str) -> str:
        """What was typed in the secret field of ``mode``."""
        return {"basic": self.password, "bearer": self.token, "header": self.header_value}.get(
            mode, ""
        )


def read_form(form: FormData) -> WebhookForm:
    """The posted fields (a checkbox left unticked is simply absent)."""

    def text(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    mode = text("auth_mode")
    return WebhookForm(
        name=text("name"),
        url=text("url"),
        auth_mode=mode if mode in AUTH_MODES else "none",
        username=text("username"),
        header_name=text("header_name"),
        events=[v for v in form.getlist("events") if isinstance(v, str)],
        sites=text("sites"),
        include_order=form.get("include_order") is not None,
        enabled=form.get("enabled") is not None,
        password=text("password"),
        token=text("token"),
        header_value=text("header_value"),
    )


def from_webhook(webhook: WebhookOut) -> WebhookForm:
    """The form prefilled from a stored webhook: every field but the secrets."""
    auth = webhook.auth
    return WebhookForm(
        name=webhook.name,
        url=webhook.url,
        auth_mode=auth.mode,
        username=getattr(auth, "username", "") if auth.mode == "basic" else "",
        header_name=getattr(auth, "name", "") if auth.mode == "header" else "",
        events=list(webhook.events),
        sites=", ".join(webhook.sites),
        include_order=webhook.include_order,
        enabled=webhook.enabled,
    )


def auth_payload(form: WebhookForm, stored_credentials: Mapping[str, Any]) -> dict[str, Any]:
    """The ``auth`` object of the request; a blank field is left out, so it is "required".

    ``stored_credentials`` (same mode only) fill in a secret left blank on edit.
    """
    mode = form.auth_mode
    typed = {
        "basic": {"username": form.username, "password": form.password},
        "bearer": {"token": form.token},
        "header": {"name": form.header_name, "value": form.header_value},
    }.get(mode, {})
    auth: dict[str, Any] = {"mode": mode}
    for name, value in typed.items():
        if not value and name == _SECRET_FIELDS.get(mode):
            value = str(stored_credentials.get(name, ""))
        if value:
            auth[name] = value
    return auth


def create_payload(form: WebhookForm) -> dict[str, Any]:
    """The body of ``POST /v1/webhooks`` the form stands for."""
    return {
        "name": form.name,
        "url": form.url,
        "auth": auth_payload(form, {}),
        "events": form.events,
        "sites": form.site_list(),
        "include_order": form.include_order,
        "enabled": form.enabled,
    }


def update_payload(
    form: WebhookForm, current: WebhookOut, stored_mode: str, stored: Mapping[str, Any]
) -> dict[str, Any]:
    """The body of ``PATCH /v1/webhooks/{id}``: only what the form changed.

    Unchanged fields are left out on purpose: ``enabled: true`` also closes an open
    circuit, which merely renaming a webhook must not do.
    """
    wanted = create_payload(form)
    wanted["auth"] = auth_payload(form, stored if form.auth_mode == stored_mode else {})
    existing = {
        "name": current.name,
        "url": current.url,
        "auth": {"mode": stored_mode, **stored},
        "events": current.events,
        "sites": current.sites,
        "include_order": current.include_order,
        "enabled": current.enabled,
    }
    return {name: value for name, value in wanted.items() if value != existing[name]}


def validate(model: type[Model], payload: Mapping[str, Any]) -> tuple[Model | None, FieldErrors]:
    """The API model, or the message of each offending form field."""
    try:
        return model.model_validate(payload), {}
    except ValidationError as exc:
        return None, validation_errors(exc)


def validation_errors(exc: ValidationError) -> FieldErrors:
    """The first message per form field ("auth.password", "events", "sites", ...)."""
    errors: FieldErrors = {}
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        path = field_path(loc)
        key = _form_key(path)
        message = _message(key, error)
        # A bad list item names itself: "sites" alone does not say which site is wrong.
        if loc and isinstance(loc[-1], int) and key in ("events", "sites"):
            message = f"{error.get('input')!r}: {message}"
        errors.setdefault(key, message)
    return errors


def api_error(exc: ApiError) -> FieldErrors:
    """An error of the API functions, at the field it names."""
    return {_form_key(exc.field): str(exc.detail)}


def _form_key(path: str | None) -> str:
    if not path:
        return FORM_WIDE
    parts = path.split(".")
    if parts[0] == "auth" and len(parts) > 1 and not parts[1].isdigit():
        return f"auth.{parts[1]}"
    return parts[0]


def _message(key: str, error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    context = error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and context.get("min_length") == 1):
        return "required"
    if key == "events" and kind == "too_short":
        return "choose at least one event"
    if key == "auth" and kind in ("union_tag_invalid", "union_tag_not_found"):
        return "choose an authentication mode"
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")
