"""Is the Kafka cluster reachable? librdkafka's callbacks record facts; the loop judges them.

`ClientFacts` is what one client's callbacks (``error_cb``, ``stats_cb``, the assignment hook)
write: error codes, and the latest verdict on the cluster. They only record, never raise, never
log (confluent-kafka-python issue #729). `BrokerWatch.observe` runs on the loop's own stack once
per iteration: it moves the ``kafka`` `DependencyState` (and so ``/readyz`` and
``stream_scorer_dependency_up{dependency="kafka"}``), counts errors in
``stream_scorer_kafka_client_errors_total{client,code}``, logs the loss, the recovery and, while
the cluster stays unreachable, one summary per ``LOG_INTERVAL_S``; and past
``kafka.unreachable_exit_s`` it raises `DependencyLostError`, so the process exits non-zero and
its orchestrator restarts it.

The verdict comes from the consumer, which is never idle (heartbeats, fetches): reachable when a
statistics report shows a learned broker UP and the group coordinator known (or on an
assignment), unreachable on ``_ALL_BROKERS_DOWN``, an authentication failure, or a statistics
report without either. Records fetched are not evidence: librdkafka serves prefetched ones after
the connection is gone. The producer's errors are counted and logged; an idle producer's
connection may be closed by the broker, so its verdict would be noise, and a producer that cannot
deliver fails its deliveries (``message.timeout.ms``), which stops the worker.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass

from consumer.clock import Clock
from consumer.errors import DependencyLostError
from consumer.metrics import Metrics
from consumer.telemetry.health import DependencyState

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 30.0
STATS_INTERVAL_MS = 2_000  # librdkafka statistics: how soon a recovered cluster is seen
_SECURITY = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"})
LOST_CODES = frozenset(
    {"_ALL_BROKERS_DOWN", "_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Observation:
    """What one client reported since the previous `ClientFacts.take`."""

    reachable: bool | None  # the latest verdict, None: no new evidence
    errors: dict[str, int]  # error code -> count
    last_error: str
    reason: str  # why the latest verdict is "unreachable"


class ClientFacts:
    """Written by one client's librdkafka callbacks (on the loop's thread, inside poll)."""

    def __init__(self, client: str) -> None:
        self.client = client
        self._reachable: bool | None = None
        self._errors: deque[str] = deque(maxlen=10_000)
        self._last_error = ""
        self._reason = ""

    def error(self, code: str, text: str) -> None:
        """``error_cb``: librdkafka reported an error (code name, message)."""
        self._errors.append(code)
        # An authentication failure's text is logged once by the security health record
        # (consumer.stream.kafka_health); here it is named, not repeated.
        self._last_error = (
            f"{code}: authentication failed" if code in _SECURITY else f"{code}: {text}"
        )
        if code in LOST_CODES:
            self._reachable = False
            self._reason = self._last_error

    def stats(self, text: str) -> None:
        """``stats_cb``: librdkafka's statistics JSON; only the broker states are read."""
        try:
            verdict = reachable_from_stats(json.loads(text))
        except (ValueError, TypeError, AttributeError):
            return  # a malformed report is no evidence
        if verdict is not None:
            self._reachable = verdict
            self._reason = "" if verdict else "no broker or group coordinator reachable"

    def contact(self) -> None:
        """The cluster answered (a partition assignment)."""
        self._reachable = True

    def take(self) -> Observation:
        errors: dict[str, int] = {}
        while self._errors:
            code = self._errors.popleft()
            errors[code] = errors.get(code, 0) + 1
        verdict, self._reachable = self._reachable, None
        return Observation(verdict, errors, self._last_error, self._reason)


def reachable_from_stats(stats: dict[str, object]) -> bool | None:
    """A learned broker UP and, for a group member, the coordinator known; None: not a report."""
    brokers = stats.get("brokers")
    if not isinstance(brokers, dict):
        return None
    up = any(
        isinstance(b, dict) and b.get("state") == "UP" and int(b.get("nodeid", -1)) >= 0
        for b in brokers.values()
    )
    group = stats.get("cgrp")
    coordinator = not isinstance(group, dict) or group.get("state") == "up"
    return up and coordinator


class BrokerWatch:
    """Judges the consumer's facts on the loop's stack; raises past the configured bound."""

    def __init__(
        self,
        consumer: ClientFacts,
        producer: ClientFacts,
        state: DependencyState,
        metrics: Metrics,
        clock: Clock,
        exit_after_s: float,
        where: str,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self.state = state
        self._metrics = metrics
        self._clock = clock
        self._exit_after_s = exit_after_s
        self._where = where
        self._next_report = clock.monotonic() + LOG_INTERVAL_S
        self._errors_since_report = 0
        self._last_error = ""
        self._ever_up = False

    @property
    def up(self) -> bool:
        return self.state.up

    def observe(self) -> None:
        """Take the callbacks' facts, log changes; past the bound raise `DependencyLostError`."""
        seen = self._consumer.take()
        for facts, obs in ((self._consumer, seen), (self._producer, self._producer.take())):
            for code, n in obs.errors.items():
                self._metrics.kafka_client_errors.labels(facts.client, code).inc(n)
                self._errors_since_report += n
            if obs.errors:
                self._last_error = obs.last_error
        if seen.reachable is True and self.state.mark_up():
            again = " again" if self._ever_up else ""
            self._ever_up = True
            log.info("the Kafka cluster at %s answers%s", self._where, again)
        elif seen.reachable is False and self.state.mark_down(seen.reason):
            self._lost()
        if not self.state.up:
            self._while_down()

    def _lost(self) -> None:
        bound = f"exiting after {self._exit_after_s:.0f} s" if self._exit_after_s else "no exit"
        log.warning("lost the Kafka cluster at %s (%s): not ready, %s", self._where,
                    self.state.reason, bound)  # fmt: skip
        self._next_report = self._clock.monotonic() + LOG_INTERVAL_S
        self._errors_since_report = 0

    def _while_down(self) -> None:
        down_s = self.state.down_for()
        now = self._clock.monotonic()
        if self._exit_after_s and down_s > self._exit_after_s:
            log.critical("the Kafka cluster at %s was unreachable for %.0f s (bound %.0f s): "
                         "exiting", self._where, down_s, self._exit_after_s)  # fmt: skip
            raise DependencyLostError(f"the Kafka cluster at {self._where}", down_s,
                                      self.state.reason)  # fmt: skip
        if now >= self._next_report:
            self._next_report = now + LOG_INTERVAL_S
            last = self._last_error or self.state.reason
            log.warning("the Kafka cluster at %s is unreachable for %.0f s (%d client errors "
                        "since the last report; last: %s)", self._where, down_s,
                        self._errors_since_report, last)  # fmt: skip
            self._errors_since_report = 0
