"""Failed authentications, counted per client address: too many, and the address waits.

An address that presented ``MAX_FAILED_AUTHS`` unknown keys within ``FAILED_AUTH_WINDOW_S``
seconds (a moving window) gets 429 with ``Retry-After`` on every request that presents a
key, valid or not, until its oldest failure leaves the window. Refusing valid keys too is
the point: otherwise each guess would still be checked against the database, and a lucky
one would get through. A request with no key at all is not a guess and is not counted.

Keys carry 256 random bits, so guessing one is hopeless anyway; this keeps floods of bad
keys from turning into database lookups and makes such clients visible.

The counts live in the memory of one API process (``limits``' moving window in memory):
``serve`` runs one API process, so its limit is exact; N ``api`` processes behind a load
balancer allow up to N times as many failures. The address is the client's as uvicorn
sees it: ``X-Forwarded-For`` is believed from the addresses in ``FORWARDED_ALLOW_IPS``
(uvicorn's variable, default the loopback), so a proxy elsewhere must be listed there, or
every client shares the proxy's address and its budget.
"""

from __future__ import annotations

import math
import time
from typing import cast

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

# 10 unknown keys a minute is far more than a person mistyping, and nothing a script
# guessing keys could use.
MAX_FAILED_AUTHS = 10
FAILED_AUTH_WINDOW_S = 60
_UNKNOWN_ADDRESS = "unknown"


class FailedAuthThrottle:
    """Counts failed key checks per client address in a moving window."""

    def __init__(
        self, max_failures: int = MAX_FAILED_AUTHS, window_s: int = FAILED_AUTH_WINDOW_S
    ) -> None:
        self._limit = RateLimitItemPerSecond(max_failures, window_s, namespace="failed-auth")
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, address: str) -> int | None:
        """Seconds ``address`` must wait before presenting a key again; None when it may now."""
        if self._limiter.test(self._limit, address):
            return None
        reset_at = self._limiter.get_window_stats(self._limit, address).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def record_failure(self, address: str) -> None:
        """Count one unknown key presented by ``address``."""
        self._limiter.hit(self._limit, address)


def client_address(request: Request) -> str:
    """The client's address as the server saw it (after any trusted proxy headers)."""
    return request.client.host if request.client is not None else _UNKNOWN_ADDRESS


def get_throttle(request: Request) -> FailedAuthThrottle:
    """The app's failed-authentication counter (one per app, so one per API process)."""
    return cast(FailedAuthThrottle, request.app.state.failed_auth)


def too_many_failures_message(retry_after_s: int) -> str:
    """What a 429 says."""
    return f"too many failed authentications from this address; try again in {retry_after_s} s"
