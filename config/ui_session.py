"""Signing in to the web pages: the API key kept in a cookie, CSRF tokens derived from it.

The cookie holds the key itself, so the pages need no session table and stay as stateless
as the JSON API: every request looks the key up exactly as ``Authorization: Bearer`` does.
The CSRF token is an HMAC of a fixed label keyed by that API key: nobody without the key
can compute it, and there is nothing to store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from config.auth import Principal, TooManyFailedAuths, authenticate
from config.errors import ApiError

SESSION_COOKIE = "wr_session"
# The sign-in form has no key to derive a token from yet: it uses a double-submit
# cookie instead, which a cross-site form cannot send (SameSite=Strict).
SIGN_IN_COOKIE = "wr_sign_in"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"
_CSRF_LABEL = b"webhook-router ui csrf v1"


class SignInRequired(Exception):
    """No valid session cookie: the page answers with a redirect to the sign-in form."""


@dataclass(frozen=True, slots=True)
class PageUser:
    """Who is looking at a page: the key's principal and the CSRF token of its forms."""

    principal: Principal
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        """Admins see and may use the forms that change things."""
        return self.principal.is_admin


def csrf_token(api_key: str) -> str:
    """The CSRF token of every form shown to the holder of ``api_key``."""
    return hmac.new(api_key.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def tokens_match(sent: object, expected: str) -> bool:
    """Constant-time comparison of a posted token with the expected one (never empty)."""
    if not expected or not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


def new_sign_in_token() -> str:
    """A random token for the sign-in form and its cookie."""
    return secrets.token_urlsafe(32)


def _set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def start_session(response: Response, request: Request, api_key: str) -> None:
    """Keep the key in an HttpOnly, SameSite=Strict cookie (Secure over https)."""
    _set_cookie(response, request, SESSION_COOKIE, api_key)
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)


def end_session(response: Response) -> None:
    """Forget the key."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def set_sign_in_cookie(response: Response, request: Request, token: str) -> None:
    """The double-submit half of the sign-in form's token."""
    _set_cookie(response, request, SIGN_IN_COOKIE, token)


def session_user(request: Request) -> PageUser | None:
    """The signed-in user, or None when the cookie is missing or its key unknown.

    An unknown key counts as a failed authentication, like a bad bearer key; while the
    address is throttled, nobody is signed in here and the sign-in form says why.
    """
    api_key = request.cookies.get(SESSION_COOKIE)
    if not api_key:
        return None
    try:
        principal = authenticate(request, api_key)
    except TooManyFailedAuths:
        return None
    if principal is None:
        return None
    return PageUser(principal, csrf_token(api_key))


def signed_in(request: Request) -> PageUser:
    """FastAPI dependency: the signed-in user; redirects to sign in otherwise."""
    user = session_user(request)
    if user is None:
        raise SignInRequired
    return user


async def checked_form(request: Request, user: Annotated[PageUser, Depends(signed_in)]) -> FormData:
    """FastAPI dependency: the posted form, once its CSRF token proved it came from us."""
    form = await request.form()
    if not tokens_match(form.get(CSRF_FIELD), user.csrf_token):
        raise ApiError(403, "the form's security token is missing or wrong; reload the page")
    return form


def admin_form(
    user: Annotated[PageUser, Depends(signed_in)],
    form: Annotated[FormData, Depends(checked_form)],
) -> FormData:
    """FastAPI dependency: a CSRF-checked form posted by an admin (403 for viewers)."""
    if not user.is_admin:
        raise ApiError(403, "this API key is read-only (viewer); sign in with an admin key")
    return form


User = Annotated[PageUser, Depends(signed_in)]
AdminForm = Annotated[FormData, Depends(admin_form)]
CheckedForm = Annotated[FormData, Depends(checked_form)]
