"""Signing secret rotation: a new secret at once, the replaced one still valid for a while.

During the overlap workers sign every delivery with both secrets (two ``v1,`` values in
``webhook-signature``), so a receiver can switch secrets whenever it likes within it.
Only one previous secret is kept: rotating again within the overlap replaces it with the
secret being rotated out, and the older one stops being signed with at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from consumers.signing import generate_secret
from router.models import Webhook, as_utc
from router.settings import MAX_SECRET_ROTATION_OVERLAP_S


class SecretRotationRequest(BaseModel):
    """``POST /v1/webhooks/{id}/rotate-secret``: how long the old secret stays valid."""

    model_config = ConfigDict(extra="forbid")

    overlap_s: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SECRET_ROTATION_OVERLAP_S,
        description="Seconds the old secret stays valid (0: dropped at once, at most 30 days);"
        " null or absent: ROUTER_SECRET_ROTATION_OVERLAP_S",
    )


def rotate_secret(webhook: Webhook, overlap_s: int, now: datetime) -> None:
    """Give ``webhook`` a new secret; the one it replaces stays valid ``overlap_s`` more."""
    replaced = webhook.secret
    webhook.secret = generate_secret()
    if overlap_s > 0:
        webhook.previous_secret = replaced
        # Whole seconds, like the webhook-timestamp that signing compares it with.
        expires_at = now.replace(microsecond=0) + timedelta(seconds=overlap_s)
        webhook.previous_secret_expires_at = expires_at
    else:
        webhook.previous_secret = None
        webhook.previous_secret_expires_at = None
    webhook.updated_at = now


def previous_secret_expiry(webhook: Webhook, now: datetime) -> datetime | None:
    """When the previous secret stops being signed with; None when none is valid at ``now``."""
    expires_at = webhook.previous_secret_expires_at
    if webhook.previous_secret is None or expires_at is None:
        return None
    expires_at = as_utc(expires_at)
    return expires_at if expires_at > now else None
