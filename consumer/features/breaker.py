"""When to try the feature store again: a circuit breaker over whole fetches, retry pacing.

    closed ──(`failures` consecutive failed fetches)──▶ open
    open ──(`reset_s` elapsed; the next `allow()` takes the single probe)──▶ half-open
    half-open ──probe succeeds──▶ closed          half-open ──probe fails──▶ open (timer restarts)

Invariants: while open, `allow()` refuses without touching the network, so a dead feature store
costs the loop nothing but the policy; in half-open exactly one caller holds the probe until it
reports `record_success` or `record_failure`; a success always closes the breaker and clears the
count. Time comes only from `Clock.monotonic`, so `ManualClock` drives every transition in tests.

Within one fetch, retries of a request are paced by `backoff_s` (exponential, jittered) or by the
server's ``Retry-After`` (`parse_retry_after`), whichever is longer.
"""

from __future__ import annotations

import email.utils
import enum
import random
import time
from collections.abc import Callable

from consumer.clock import Clock


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; refuses calls while open; probes once after a pause."""

    def __init__(
        self,
        clock: Clock,
        failures: int,
        reset_s: float,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        self._clock = clock
        self._threshold = failures
        self._reset_s = reset_s
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose pause has elapsed reports half-open)."""
        if self._state is BreakerState.OPEN and self.retry_in() == 0.0:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a probe is allowed (0 unless open): when a paused loop should retry."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._reset_s - self._clock.monotonic())

    def allow(self) -> bool:
        """May a fetch go to the network now? Takes the probe slot when half-opening."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self.retry_in() > 0.0:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._probing = False
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self._opened_at = self._clock.monotonic()
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        changed = state is not self._state
        self._state = state
        if changed and self._on_change is not None:
            self._on_change(state)

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state.value}, failures={self._failures})"


def backoff_s(attempt: int, rng: random.Random, base_s: float = 0.02, cap_s: float = 1.0) -> float:
    """Jittered exponential backoff ("equal jitter"): half fixed, half random."""
    step = min(cap_s, base_s * (1 << attempt))
    return step / 2 + rng.uniform(0.0, step / 2)


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = float(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now_s is None else now_s))
