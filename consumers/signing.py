"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def generate_secret() -> str:
    """A new ``whsec_`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=65536)
def _key(secret: str) -> bytes:
    # Decoded once per secret, not once per delivery.
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """One ``v1,`` signature value for this message under ``secret``."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp_s, body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_: Iterable[str], message_id: str, timestamp_s: int, body: bytes
) -> str:
    """The ``webhook-signature`` value: one signature per valid secret, space-separated."""
    return " ".join(sign(secret, message_id, timestamp_s, body) for secret in secrets_)
