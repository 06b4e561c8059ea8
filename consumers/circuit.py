"""Circuit breaking: a webhook that keeps failing is paused instead of burning attempts.

    closed ──N consecutive failures──► open ──cool-down over, one worker claims──► half_open
      ▲                                  ▲                                            │
      └──────── probe answered 2xx ──────┼───────────────────────────────────────────┤
                                         └──── probe failed (cool-down doubles) ◄─────┘

While open, no worker consumes the webhook's queue: its messages wait there, retries
included as they come back from their delay tiers. The state lives in the database, so
every worker agrees on it and a restart forgets nothing; the claim of the probe is a
conditional UPDATE, so exactly one worker probes. Consecutive failures are counted in
each worker's memory: that count is only a trigger, and losing it costs a few attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from router.models import Webhook

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Counts consecutive failures per webhook and moves circuits in the database."""

    sessions: sessionmaker[Session]
    failure_threshold: int
    cooldown_s: float
    max_cooldown_s: float
    probe_lease_s: float
    _failures: dict[str, int] = field(default_factory=dict)

    def record(self, webhook_id: str, success: bool) -> bool:
        """Count one attempt; True exactly when this failure reaches the threshold."""
        if success:
            self._failures.pop(webhook_id, None)
            return False
        count = self._failures.get(webhook_id, 0) + 1
        self._failures[webhook_id] = count
        return count == self.failure_threshold

    def open(self, webhook_id: str) -> bool:
        """Open a closed circuit; False when it was not closed (someone else opened it)."""
        now = datetime.now(UTC)
        return self._update(
            webhook_id,
            (Webhook.circuit_state == CLOSED,),
            circuit_state=OPEN,
            circuit_opened_at=now,
            circuit_retry_at=now + timedelta(seconds=self.cooldown_s),
            circuit_cooldown_s=self.cooldown_s,
        )

    def claim_probe(self, webhook_id: str) -> bool:
        """Take the right to probe: the cool-down is over and nobody else holds it.

        The claim is a lease: a worker that dies while probing leaves ``half_open`` with
        an expired ``circuit_retry_at``, which the next claim takes over.
        """
        now = datetime.now(UTC)
        return self._update(
            webhook_id,
            (
                or_(Webhook.circuit_state == OPEN, Webhook.circuit_state == HALF_OPEN),
                Webhook.circuit_retry_at <= now,
            ),
            circuit_state=HALF_OPEN,
            circuit_retry_at=now + timedelta(seconds=self.probe_lease_s),
        )

    def close(self, webhook_id: str) -> bool:
        """Close the circuit after a successful probe."""
        self._failures.pop(webhook_id, None)
        return self._update(
            webhook_id,
            (Webhook.circuit_state != CLOSED,),
            circuit_state=CLOSED,
            circuit_opened_at=None,
            circuit_retry_at=None,
            circuit_cooldown_s=0.0,
        )

    def reopen(self, webhook_id: str, previous_cooldown_s: float, retry_now: bool = False) -> bool:
        """Back to open after a failed probe, with twice the cool-down (up to the maximum)."""
        cooldown_s = min(max(previous_cooldown_s, self.cooldown_s) * 2, self.max_cooldown_s)
        delay_s = 0.0 if retry_now else cooldown_s
        return self._update(
            webhook_id,
            (Webhook.circuit_state == HALF_OPEN,),
            circuit_state=OPEN,
            circuit_retry_at=datetime.now(UTC) + timedelta(seconds=delay_s),
            circuit_cooldown_s=previous_cooldown_s if retry_now else cooldown_s,
        )

    def _update(self, webhook_id: str, conditions: tuple[object, ...], **values: object) -> bool:
        with self.sessions() as session:
            result = session.execute(
                update(Webhook)
                .where(Webhook.id == webhook_id, *conditions)  # type: ignore[arg-type]
                .values(**values)
            )
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]
