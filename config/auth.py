"""API keys: created once, stored as a SHA-256 hash, checked on every request.

Keys carry 256 random bits, so a fast unsalted hash is enough: nobody can brute-force
the preimage, and the hash itself is the lookup index.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.app import get_sessions
from config.auth_throttle import client_address, get_throttle, too_many_failures_message
from config.errors import ApiError
from router.events import ID_PATTERN
from router.models import ApiKey, new_id

KEY_PREFIX = "wr_"
ROLES = frozenset({"admin", "viewer"})
_SHOWN_PREFIX_CHARS = 10

bearer = HTTPBearer(
    auto_error=False, description="An API key, created with `webhook-router keys create`."
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's account and role."""

    account_id: str
    role: str
    key_id: str

    @property
    def is_admin(self) -> bool:
        """Admins may change things; viewers may only read."""
        return self.role == "admin"


def generate_key() -> str:
    """A new plaintext API key: ``wr_`` and 32 random bytes, base64url."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(sessions: sessionmaker[Session], account_id: str, role: str) -> str:
    """Store a new key for ``account_id`` with ``role``; return the plaintext, shown once."""
    if not ID_PATTERN.match(account_id):
        raise ValueError("account id must be 1 to 64 letters, digits, '_' or '-'")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(sorted(ROLES))}")
    key = generate_key()
    with sessions() as session:
        session.add(
            ApiKey(
                id=new_id("key"),
                account_id=account_id,
                role=role,
                key_hash=hash_key(key),
                prefix=key[:_SHOWN_PREFIX_CHARS],
            )
        )
        session.commit()
    return key


def find_principal(sessions: sessionmaker[Session], key: str) -> Principal | None:
    """The principal a plaintext key belongs to, or None for an unknown key."""
    with sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None:
        return None
    return Principal(account_id=row.account_id, role=row.role, key_id=row.id)


class TooManyFailedAuths(ApiError):
    """429: the client's address presented too many unknown keys lately."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            429,
            too_many_failures_message(retry_after_s),
            headers={"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


def authenticate(request: Request, key: str) -> Principal | None:
    """The principal of a presented key, None when unknown (and counted against the address).

    Raises TooManyFailedAuths, without looking the key up, while the address is throttled.
    """
    throttle, address = get_throttle(request), client_address(request)
    retry_after_s = throttle.retry_after(address)
    if retry_after_s is not None:
        raise TooManyFailedAuths(retry_after_s)
    principal = find_principal(get_sessions(request), key)
    if principal is None:
        throttle.record_failure(address)
    return principal


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """FastAPI dependency: the caller, from ``Authorization: Bearer <key>``.

    401 without a key or with an unknown one; 429 after too many unknown ones.
    """
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing API key: send Authorization: Bearer <key>")
    principal = authenticate(request, credentials.credentials)
    if principal is None:
        raise _unauthorized("unknown API key")
    return principal


def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """FastAPI dependency: the caller, who must hold an admin key (403 otherwise)."""
    if not principal.is_admin:
        raise ApiError(403, "this API key is read-only (viewer); an admin key is required")
    return principal


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
