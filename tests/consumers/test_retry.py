"""The retry policy after each attempt (consumers/retry.py)."""

from __future__ import annotations

import random

import pytest

from consumers.retry import Decision, Outcome, RetryPolicy, is_success

SCHEDULE_S = (5.0, 30.0, 120.0)


@pytest.mark.parametrize("status_code", [200, 201, 202, 204, 299])
def test_2xx_is_success(status_code: int) -> None:
    # Given a 2xx answer
    # When it is judged
    # Then it is a success
    assert is_success(status_code)


@pytest.mark.parametrize("status_code", [None, 100, 199, 300, 301, 304, 400, 404, 410, 429, 500])
def test_anything_else_is_not_success(status_code: int | None) -> None:
    # Given no answer, or an answer outside 2xx
    # When it is judged
    # Then it is a failure
    assert not is_success(status_code)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 100])
def test_success_is_delivered_at_any_attempt(attempt: int) -> None:
    # Given an attempt, even past the last scheduled one, that got a 200
    policy = RetryPolicy(SCHEDULE_S, jitter=0.1)
    # When the policy decides
    decision = policy.decide(attempt, 200, random.Random(1))
    # Then it is delivered, with no delay
    assert decision == Decision(Outcome.DELIVERED)


def test_max_attempts_is_first_attempt_plus_one_per_delay() -> None:
    # Given a schedule of three delays
    # When the policy is built
    # Then a message gets four attempts
    assert RetryPolicy(SCHEDULE_S).max_attempts == 4
    assert RetryPolicy(()).max_attempts == 1


@pytest.mark.parametrize("status_code", [None, 400, 401, 404, 408, 422, 429, 500, 502, 503])
def test_failures_are_retried(status_code: int | None) -> None:
    # Given a first attempt that failed with no answer, a 4xx or a 5xx
    policy = RetryPolicy(SCHEDULE_S, jitter=0.0)
    # When the policy decides
    decision = policy.decide(1, status_code, random.Random(1))
    # Then it is retried after the first scheduled delay
    assert decision == Decision(Outcome.RETRYING, 5000)


@pytest.mark.parametrize(("attempt", "delay_ms"), [(1, 5000), (2, 30000), (3, 120000)])
def test_each_retry_uses_its_scheduled_delay(attempt: int, delay_ms: int) -> None:
    # Given a schedule without jitter
    policy = RetryPolicy(SCHEDULE_S, jitter=0.0)
    # When attempt n fails
    decision = policy.decide(attempt, 500, random.Random(1))
    # Then the retry waits the n-th delay
    assert decision == Decision(Outcome.RETRYING, delay_ms)


@pytest.mark.parametrize("attempt", [4, 5, 50])
def test_failure_at_max_attempts_is_dead_lettered(attempt: int) -> None:
    # Given the last allowed attempt (or later), failed
    policy = RetryPolicy(SCHEDULE_S, jitter=0.1)
    # When the policy decides
    decision = policy.decide(attempt, 503, random.Random(1))
    # Then it is dead-lettered, with no delay
    assert decision == Decision(Outcome.DEAD_LETTERED)


def test_empty_schedule_dead_letters_the_first_failure() -> None:
    # Given no retries at all
    policy = RetryPolicy((), jitter=0.1)
    # When the first attempt fails
    decision = policy.decide(1, None, random.Random(1))
    # Then it is dead-lettered at once
    assert decision.outcome is Outcome.DEAD_LETTERED


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_jittered_delay_is_one_of_three_neighbours(seed: int, attempt: int) -> None:
    # Given a jitter of 10 %
    policy = RetryPolicy(SCHEDULE_S, jitter=0.1)
    scheduled_ms = SCHEDULE_S[attempt - 1] * 1000
    # When attempt n fails
    decision = policy.decide(attempt, 500, random.Random(seed))
    # Then the delay is the scheduled one times 0.9, 1 or 1.1
    assert decision.outcome is Outcome.RETRYING
    assert decision.delay_ms in {
        round(scheduled_ms * 0.9),
        round(scheduled_ms),
        round(scheduled_ms * 1.1),
    }


def test_jittered_delays_are_always_declared_tiers() -> None:
    # Given a jittered policy with fractional delays
    policy = RetryPolicy((0.2, 0.7, 1.3), jitter=0.15)
    rng = random.Random(42)
    # When many failures are decided
    delays = {
        policy.decide(attempt, 500, rng).delay_ms for attempt in (1, 2, 3) for _ in range(200)
    }
    # Then every delay is a tier the topology declares (else the message has no queue to
    # wait in), and all three neighbours of every delay get used
    assert delays == set(policy.tiers_ms())
    assert len(delays) == 9


def test_jitter_is_deterministic_for_a_seed() -> None:
    # Given two generators with the same seed
    policy = RetryPolicy(SCHEDULE_S, jitter=0.1)
    first, second = random.Random(7), random.Random(7)
    # When the same failures are decided with each
    a = [policy.decide(1, 500, first).delay_ms for _ in range(30)]
    b = [policy.decide(1, 500, second).delay_ms for _ in range(30)]
    # Then the delays are the same
    assert a == b


def test_tiny_delays_are_at_least_one_millisecond() -> None:
    # Given a delay that rounds to 0 ms
    policy = RetryPolicy((0.0001,), jitter=0.0)
    # When the first attempt fails
    decision = policy.decide(1, None, random.Random(1))
    # Then the retry waits 1 ms, the smallest tier
    assert decision.delay_ms == 1
    assert policy.tiers_ms() == (1,)


def test_outcomes_are_written_as_strings() -> None:
    # Given the outcomes
    # When they are written to a log row
    # Then they read as plain words
    words = ["delivered", "retrying", "dead_lettered", "paused", "failed"]
    assert [str(o) for o in Outcome] == words


def test_410_gone_is_final_and_asks_to_disable_the_webhook() -> None:
    # Given a first attempt answered 410 Gone
    policy = RetryPolicy(SCHEDULE_S, jitter=0.0)
    # When the policy decides
    decision = policy.decide(1, 410, random.Random(1))
    # Then it is dead-lettered at once and the webhook is to be disabled
    assert decision == Decision(Outcome.DEAD_LETTERED, gone=True)


@pytest.mark.parametrize(
    ("retry_after_s", "delay_ms"),
    [
        (None, 5000),  # no header: the schedule
        (1, 5000),  # shorter than scheduled: never faster than the schedule
        (20, 30000),  # longer: the first tier at least that long
        (30, 30000),
        (100, 120000),
        (10_000, 120000),  # past every tier: the longest tier
    ],
)
def test_retry_after_is_honoured_within_the_tiers(
    retry_after_s: float | None, delay_ms: int
) -> None:
    # Given a schedule 5 s, 30 s, 120 s without jitter
    policy = RetryPolicy(SCHEDULE_S, jitter=0.0)
    # When the first attempt fails with a Retry-After
    decision = policy.decide(1, 503, random.Random(1), retry_after_s=retry_after_s)
    # Then the retry waits the tier that honours it
    assert decision == Decision(Outcome.RETRYING, delay_ms)


def test_retry_after_is_capped() -> None:
    # Given a cap of 60 s on Retry-After
    policy = RetryPolicy(SCHEDULE_S, jitter=0.0, retry_after_max_s=60)
    # When an endpoint asks for a day
    decision = policy.decide(1, 429, random.Random(1), retry_after_s=86400)
    # Then the wait is the first tier past the cap, not a day
    assert decision == Decision(Outcome.RETRYING, 120000)


@pytest.mark.parametrize(("max_attempts", "outcome"), [(1, "dead_lettered"), (2, "retrying")])
def test_a_webhook_may_allow_fewer_attempts(max_attempts: int, outcome: str) -> None:
    # Given a webhook limited to max_attempts
    policy = RetryPolicy(SCHEDULE_S, jitter=0.0)
    # When its first attempt fails
    decision = policy.decide(1, 500, random.Random(1), max_attempts=max_attempts)
    # Then the limit applies
    assert decision.outcome == outcome


def test_a_webhook_cannot_allow_more_attempts_than_the_schedule() -> None:
    # Given a webhook asking for 50 attempts on a 3-delay schedule
    policy = RetryPolicy(SCHEDULE_S, jitter=0.0)
    # When its fourth attempt fails
    decision = policy.decide(4, 500, random.Random(1), max_attempts=50)
    # Then there is no tier left: it is dead-lettered
    assert decision == Decision(Outcome.DEAD_LETTERED)


@pytest.mark.parametrize(("delay_ms", "scheduled"), [(4500, 5.0), (5500, 5.0), (132000, 120.0)])
def test_a_tier_maps_back_to_its_scheduled_delay(delay_ms: int, scheduled: float) -> None:
    # Given jittered tiers / When mapped back / Then the scheduled delay labels them
    assert RetryPolicy(SCHEDULE_S, jitter=0.1).scheduled_delay_s(delay_ms) == scheduled
