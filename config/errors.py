"""Every API error as JSON ``{"error": {"message", "field"}}``, mapped in one table.

HTTPException (FastAPI's or Starlette's)   its status, its detail as the message
└── ApiError                               the same, naming the field at fault
RequestValidationError                     422, the first field plus every error
BrokerUnavailable                          503, try again
sqlalchemy OperationalError                503, try again
EncryptionKeyError                         500, naming the key setting (a deployment error)

413 (body too large, config/body_limit.py) and 429 (failed keys, config/auth_throttle.py)
are ApiErrors too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from config.schemas import UNION_TAGS, ErrorResponse
from router.errors import BrokerUnavailable, EncryptionKeyError

logger = logging.getLogger(__name__)

# Leading loc parts naming where FastAPI found the value, not the field itself.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})

ExceptionHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


class ApiError(HTTPException):
    """An HTTP error that names the request field at fault (``None`` when no field is)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.field = field


def error_body(
    message: str, field: str | None = None, errors: list[dict[str, str | None]] | None = None
) -> dict[str, Any]:
    """The JSON every error answers with; ``errors`` lists each offending field (422 only)."""
    detail: dict[str, Any] = {"message": message, "field": field}
    if errors is not None:
        detail["errors"] = errors
    return {"error": detail}


def field_path(loc: Sequence[int | str]) -> str | None:
    """``("body", "auth", "basic", "password")`` -> ``"auth.password"``; ``None`` if empty."""
    parts = list(loc[1:] if loc and loc[0] in _SOURCES else loc)
    # A discriminated union puts the tag it chose in the path; the client never wrote it.
    cleaned: list[str] = []
    for index, part in enumerate(parts):
        previous = parts[index - 1] if index else None
        if isinstance(previous, str) and part in UNION_TAGS.get(previous, ()):
            continue
        cleaned.append(str(part))
    return ".".join(cleaned) or None


def _validation_message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"request body is not valid JSON: {reason}".rstrip(": ")
    if tuple(error.get("loc", ())) == ("body",):
        if kind == "missing":
            return "request body is required"
        return "request body must be a JSON object"
    if kind == "extra_forbidden":
        return "unknown field"
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes the messages of ValueErrors raised by our validators.
    return message.removeprefix("Value error, ")


def _headline(message: str, field: str | None) -> str:
    return f"{field}: {message}" if field else message


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """422 naming the first offending field, and listing every one."""
    errors: list[dict[str, str | None]] = []
    for error in exc.errors():
        is_json = error.get("type") == "json_invalid"
        field = None if is_json else field_path(error.get("loc", ()))
        errors.append({"field": field, "message": _validation_message(error)})
    if not errors:
        errors.append({"field": None, "message": "invalid request"})
    first = errors[0]
    message = _headline(str(first["message"]), first["field"])
    return JSONResponse(error_body(message, first["field"], errors), status_code=422)


async def http_error(request: Request, exc: HTTPException) -> Response:
    """The exception's status and message; ApiError adds its field."""
    if _is_unreadable_body(exc):
        message = "request body is not valid JSON: it is not UTF-8 text"
        return JSONResponse(error_body(message, None, [{"field": None, "message": message}]), 422)
    field = exc.field if isinstance(exc, ApiError) else None
    detail = str(exc.detail)
    errors = [{"field": field, "message": detail}] if exc.status_code == 422 else None
    body = error_body(_headline(detail, field), field, errors)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _is_unreadable_body(exc: HTTPException) -> bool:
    # FastAPI answers 400 "There was an error parsing the body" when a JSON body is not
    # UTF-8 (UnicodeDecodeError): undocumented, and just a body that is not valid JSON.
    return (
        exc.status_code == 400
        and not isinstance(exc, ApiError)
        and isinstance(exc.__cause__, UnicodeDecodeError)
    )


async def broker_unavailable(request: Request, exc: BrokerUnavailable) -> Response:
    """503: RabbitMQ is down or refused; nothing was changed, the client may retry."""
    logger.warning("broker unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body("message broker unavailable, try again"),
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def database_unavailable(request: Request, exc: OperationalError) -> Response:
    """503: the database refused or dropped the connection."""
    logger.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body("database unavailable, try again"),
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def wrong_encryption_key(request: Request, exc: EncryptionKeyError) -> Response:
    """500 that says what is wrong: stored secrets do not decrypt with the configured keys."""
    logger.error("during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body(
            "stored secrets cannot be decrypted with ROUTER_ENCRYPTION_KEYS; "
            "the operator must configure the key they were written with"
        ),
        status_code=500,
    )


async def internal_error(request: Request, exc: Exception) -> Response:
    """500 in the same JSON shape; the details go to the log, never to the client."""
    logger.exception("unhandled error during %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal server error"), status_code=500)


EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler] = {
    RequestValidationError: validation_error,
    HTTPException: http_error,
    BrokerUnavailable: broker_unavailable,
    OperationalError: database_unavailable,
    EncryptionKeyError: wrong_encryption_key,
    Exception: internal_error,
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error model for these statuses.

    Whatever checks a key (401) may also refuse a client that failed too often (429).
    """
    wanted = [*statuses, 429] if 401 in statuses else list(statuses)
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in wanted
    }


_DESCRIPTIONS = {
    401: "Missing or unknown API key",
    403: "The API key's role may not do this",
    404: "No such resource in this account",
    409: "The resource's current state does not allow this; the message says why",
    413: "The request body is over the size limit",
    422: "Invalid request; `field` names the first offending field",
    429: "Too many failed authentications from this address; `Retry-After` says how long to wait",
    503: "Message broker or database unavailable; nothing changed, try again",
}
