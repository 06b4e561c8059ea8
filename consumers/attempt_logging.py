"""One log record per delivery attempt, beside its row: DEBUG when delivered, WARNING when not.

A failure is the WARNING record alone, never also a DEBUG one: at DEBUG every attempt shows
once, at INFO only the failures. The record carries ids, outcome and timing, and the target
host only: URLs may hold tokens in their path, and headers, bodies and secrets stay out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

_ROW_FIELDS = (
    "webhook_id",
    "account_id",
    "event_id",
    "event_type",
    "attempt",
    "trigger",
    "outcome",
    "response_status",
    "duration_ms",
)


def log_attempt(row: Mapping[str, Any], delay_ms: int | None) -> None:
    """Log the attempt of ``row`` (see ``attempt_row``); ``delay_ms``: when it is retried."""
    failed = row["status"] != "succeeded"
    level = logging.WARNING if failed else logging.DEBUG
    # Thousands of attempts a second: at INFO a success costs this check and nothing more.
    if not log.isEnabledFor(level):
        return
    url: str = row["request_url"]
    host = urlsplit(url).hostname
    error: str | None = row["error"]
    fields = {name: row[name] for name in _ROW_FIELDS}
    fields.update(
        attempt_id=row["id"],
        target_host=host,
        # Some transport errors quote the URL they failed on: keep its host only.
        error=error.replace(url, host or "") if error else error,
    )
    if delay_ms is not None:
        fields["next_retry_in_s"] = delay_ms / 1000
    log.log(level, "delivery failed" if failed else "delivery attempt", extra=fields)
