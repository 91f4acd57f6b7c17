"""CircuitBreaker: every transition driven by a ManualClock."""

from __future__ import annotations

import pytest

from consumer.clock import ManualClock
from consumer.features.breaker import CircuitBreaker


def make(failures: int = 3, reset_s: float = 10.0) -> tuple[CircuitBreaker, ManualClock, list[str]]:
    clock = ManualClock()
    changes: list[str] = []
    breaker = CircuitBreaker(clock, failures, reset_s, lambda s: changes.append(s.value))
    return breaker, clock, changes


def state(breaker: CircuitBreaker) -> str:
    return breaker.state.value


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _, changes = make(failures=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 2
    assert breaker.allow() is True
    breaker.record_failure()
    assert state(breaker) == "open"
    assert breaker.allow() is False
    assert changes == ["open"]


def test_half_opens_after_the_reset_time_with_a_single_probe() -> None:
    breaker, clock, changes = make(failures=1, reset_s=10.0)
    breaker.record_failure()
    clock.advance(4.0)
    assert breaker.retry_in() == pytest.approx(6.0)
    assert breaker.allow() is False
    clock.advance(6.0)
    assert state(breaker) == "half_open"
    assert breaker.retry_in() == 0.0
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False  # only one at a time
    breaker.record_success()
    assert state(breaker) == "closed"
    assert breaker.allow() is True
    assert changes == ["open", "half_open", "closed"]


def test_failed_probe_reopens_and_restarts_the_timer() -> None:
    breaker, clock, changes = make(failures=2, reset_s=5.0)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow() is True
    clock.advance(1.0)
    breaker.record_failure()
    assert state(breaker) == "open"
    assert breaker.retry_in() == pytest.approx(5.0)
    clock.advance(4.9)
    assert breaker.allow() is False
    clock.advance(0.1)
    assert breaker.allow() is True
    assert changes == ["open", "half_open", "open", "half_open"]


def test_rejects_a_zero_threshold() -> None:
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker(ManualClock(), 0, 1.0)
