"""Signing in and out of the web pages with an API key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from config.auth import TooManyFailedAuths, authenticate
from config.errors import ApiError
from config.ui_pages import SIGN_IN_PATH, WEBHOOKS_PATH, PageRoute, redirect, render
from config.ui_session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    CheckedForm,
    end_session,
    new_sign_in_token,
    session_user,
    set_sign_in_cookie,
    start_session,
    tokens_match,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/login")
def sign_in_page(request: Request) -> Response:
    """The sign-in form (straight to the webhooks when already signed in)."""
    if session_user(request) is not None:
        return redirect(WEBHOOKS_PATH)
    response = _sign_in_form(request, error=None, status_code=200)
    if request.cookies.get(SESSION_COOKIE):
        # A key that no longer works: drop it, so that every page does not count it as
        # one more failed authentication of this address.
        end_session(response)
    return response


@router.post("/login")
async def sign_in(request: Request) -> Response:
    """Keep a valid key in the session cookie; show the form again otherwise."""
    form = await request.form()
    if not tokens_match(form.get("sign_in_token"), request.cookies.get(SIGN_IN_COOKIE, "")):
        raise ApiError(403, "the sign-in form expired; reload the page and try again")
    api_key = str(form.get("api_key") or "").strip()
    try:
        principal = await run_in_threadpool(authenticate, request, api_key) if api_key else None
    except TooManyFailedAuths as exc:
        response = _sign_in_form(request, error=str(exc.detail), status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if principal is None:
        return _sign_in_form(request, error="unknown API key", status_code=401)
    response = redirect(WEBHOOKS_PATH)
    start_session(response, request, api_key)
    return response


@router.post("/logout")
def sign_out(form: CheckedForm) -> Response:
    """Forget the key and go back to the sign-in form."""
    response = redirect(SIGN_IN_PATH)
    end_session(response)
    return response


def _sign_in_form(request: Request, error: str | None, status_code: int) -> Response:
    # Reuse the cookie's token, so that two sign-in tabs do not invalidate each other.
    token = request.cookies.get(SIGN_IN_COOKIE) or new_sign_in_token()
    response = render(
        request, "login.html", None, status_code=status_code, error=error, sign_in_token=token
    )
    set_sign_in_cookie(response, request, token)
    return response
