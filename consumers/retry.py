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


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an attempt, and the delay tier when it will be retried."""

    outcome: Outcome
    delay_ms: int | None = None


def is_success(status_code: int | None) -> bool:
    """2xx means delivered; anything else (or no response) is a failure."""
    return status_code is not None and 200 <= status_code < 300


@dataclass(frozen=True)
class RetryPolicy:
    """Maps an attempt number and its result to the next step.

    Every failure is retried (Stripe and Svix retry 4xx too: receivers misconfigure), on a
    fixed schedule whose delays exist as broker-side tiers; jitter picks one of the three
    tiers around the scheduled delay so a burst of failures does not return as one burst.
    """

    schedule_s: Sequence[float]
    jitter: float = 0.1

    @property
    def max_attempts(self) -> int:
        """First attempt plus one per scheduled delay."""
        return len(self.schedule_s) + 1

    def tiers_ms(self) -> tuple[int, ...]:
        """The delay tiers this policy publishes into."""
        return delay_tiers_ms(self.schedule_s, self.jitter)

    def decide(self, attempt: int, status_code: int | None, rng: random.Random) -> Decision:
        """The decision after attempt number ``attempt`` (1-based) got ``status_code``."""
        if is_success(status_code):
            return Decision(Outcome.DELIVERED)
        if attempt >= self.max_attempts:
            return Decision(Outcome.DEAD_LETTERED)
        delay_s = self.schedule_s[attempt - 1]
        factor = rng.choice((1 - self.jitter, 1.0, 1 + self.jitter))
        return Decision(Outcome.RETRYING, max(1, round(delay_s * factor * 1000)))
