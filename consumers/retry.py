"""What to do after an attempt: done, retry after a delay tier, or dead-letter. Pure logic."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from router.topology import delay_tiers_ms


class Outcome(StrEnum):
    """How an attempt ended, as written in its log row."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
    PAUSED = "paused"  # a circuit probe failed: the message went back to its queue
    FAILED = "failed"  # a test send failed: it is never retried


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an attempt, and the delay tier when it will be retried."""

    outcome: Outcome
    delay_ms: int | None = None
    gone: bool = False  # the endpoint answered 410 Gone: disable the webhook


def is_success(status_code: int | None) -> bool:
    """2xx means delivered; anything else (or no response) is a failure."""
    return status_code is not None and 200 <= status_code < 300


@dataclass(frozen=True)
class RetryPolicy:
    """Maps an attempt number and its result to the next step.

    Every failure is retried (Stripe and Svix retry 4xx too: receivers misconfigure), on a
    fixed schedule whose delays exist as broker-side tiers; jitter picks one of the three
    tiers around the scheduled delay so a burst of failures does not return as one burst.
    ``410 Gone`` is final. A ``Retry-After`` longer than the scheduled delay is honoured,
    up to ``retry_after_max_s``, by taking the first tier at least that long.
    """

    schedule_s: Sequence[float]
    jitter: float = 0.1
    retry_after_max_s: float = 3600.0

    @property
    def max_attempts(self) -> int:
        """First attempt plus one per scheduled delay."""
        return len(self.schedule_s) + 1

    def tiers_ms(self) -> tuple[int, ...]:
        """The delay tiers this policy publishes into."""
        return delay_tiers_ms(self.schedule_s, self.jitter)

    def decide(
        self,
        attempt: int,
        status_code: int | None,
        rng: random.Random,
        retry_after_s: float | None = None,
        max_attempts: int | None = None,
    ) -> Decision:
        """The decision after attempt number ``attempt`` (1-based) got ``status_code``.

        ``max_attempts`` is the webhook's own limit, capped by the schedule's length.
        """
        if is_success(status_code):
            return Decision(Outcome.DELIVERED)
        if status_code == 410:
            return Decision(Outcome.DEAD_LETTERED, gone=True)
        limit = min(max_attempts or self.max_attempts, self.max_attempts)
        if attempt >= limit:
            return Decision(Outcome.DEAD_LETTERED)
        delay_s = self.schedule_s[attempt - 1]
        factor = rng.choice((1 - self.jitter, 1.0, 1 + self.jitter))
        delay_ms = max(1, round(delay_s * factor * 1000))
        if retry_after_s is not None and retry_after_s * 1000 > delay_ms:
            wanted_ms = min(retry_after_s, self.retry_after_max_s) * 1000
            delay_ms = max(delay_ms, self._tier_at_least(wanted_ms))
        return Decision(Outcome.RETRYING, delay_ms)

    def _tier_at_least(self, wanted_ms: float) -> int:
        tiers = self.tiers_ms()
        return next((tier for tier in tiers if tier >= wanted_ms), tiers[-1])

    def scheduled_delay_s(self, delay_ms: int) -> float:
        """The scheduled delay a tier belongs to (its jitter removed), for metric labels."""
        return min(self.schedule_s, key=lambda delay_s: abs(delay_s * 1000 - delay_ms))
