"""How the web pages answer: templates, flash messages, redirects and HTML error pages.

Every page route is a ``PageRoute``: the API functions it calls raise the API's errors
(ApiError, BrokerUnavailable, ...), and this turns them into HTML pages instead of JSON.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from config.errors import ApiError
from config.schemas import decode_cursor
from config.ui_session import COOKIE_PATH, PageUser, SignInRequired, session_user
from router.errors import BrokerUnavailable
from router.models import as_utc

logger = logging.getLogger(__name__)

UI_DIR = Path(__file__).parent
STATIC_DIR = UI_DIR / "static"
SIGN_IN_PATH = "/ui/login"
WEBHOOKS_PATH = "/ui/webhooks"  # the home page
FLASH_COOKIE = "wr_flash"
FlashKind = Literal["ok", "error"]
# Pages show account data: never cache them, never frame them.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def _format_time(moment: datetime | None) -> str:
    return "" if moment is None else as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty_json(text: str | None) -> str:
    """Indented JSON when ``text`` is JSON, else the text unchanged."""
    if not text:
        return ""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


templates = Jinja2Templates(directory=UI_DIR / "templates")
templates.env.filters["when"] = _format_time
templates.env.filters["pretty_json"] = _pretty_json


def render(
    request: Request,
    template: str,
    user: PageUser | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """The page ``template`` for ``user``, with the flash message left by a redirect."""
    flash = _read_flash(request)
    response = templates.TemplateResponse(
        request,
        template,
        {"user": user, "flash": flash, **context},
        status_code=status_code,
        headers=_PAGE_HEADERS,
    )
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path=COOKIE_PATH)
    return response


def redirect(url: str, flash: str | None = None, kind: FlashKind = "ok") -> Response:
    """303 to ``url`` (after a POST), carrying a message for the next page to show once."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        value = base64.urlsafe_b64encode(orjson.dumps({"kind": kind, "text": flash})).decode()
        response.set_cookie(FLASH_COOKIE, value, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        flash = orjson.loads(base64.urlsafe_b64decode(raw))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(flash, dict) or flash.get("kind") not in ("ok", "error"):
        return None
    return {"kind": str(flash["kind"]), "text": str(flash.get("text", ""))}


async def error_page(request: Request, status_code: int, message: str) -> Response:
    """An HTML error page (the header still shows who is signed in)."""
    user = await run_in_threadpool(session_user, request)
    return render(
        request, "error.html", user, status_code=status_code, status=status_code, message=message
    )


class PageRoute(APIRoute):
    """A route answering HTML: sign-in redirects and error pages instead of JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return RedirectResponse(SIGN_IN_PATH, status_code=303)
            except HTTPException as exc:
                return await error_page(request, exc.status_code, str(exc.detail))
            except RequestValidationError:
                return await error_page(request, 400, "this page's address is not valid")
            except BrokerUnavailable as exc:
                logger.warning("broker unavailable on %s: %s", request.url.path, exc)
                return await error_page(request, 503, "message broker unavailable, try again")
            except OperationalError as exc:
                logger.warning("database unavailable on %s: %s", request.url.path, exc)
                return await error_page(request, 503, "database unavailable, try again")

        return page_handler


def page_cursor(cursor: str | None) -> str | None:
    """The row id inside a ``cursor`` query parameter (what the API functions take)."""
    try:
        return decode_cursor(cursor or None)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
