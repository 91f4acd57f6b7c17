"""What librdkafka reports about the brokers, turned into one clear log line and an exit bound.

librdkafka retries a failed connection forever and reports each attempt: a wrong SASL password
produced ~3 ERROR lines per second, an untrusted broker certificate ~20, and the scorer ran on
without partitions. Here every report is a fact recorded by a callback (`KafkaHealth.on_error`,
never raising); the loop's thread reads them (`check`) and decides:

- security failures (authentication, TLS verification, authorization) are logged once per
  episode, in one ERROR line naming the cause and the exit bound, and counted in
  ``stream_scorer_errors_total{kind="kafka_authentication"|"kafka_tls"|"kafka_authorization"}``;
- other errors are logged at most once per ``repeat_window_s`` per error name, with the count
  of repeats left out;
- an episode ends when the broker proves reachable again (`recovered`: partitions assigned,
  records fetched, or a metadata probe answered; `wants_probe` asks for one every
  ``probe_interval_s`` while failing, so an idle topic recovers too);
- an episode older than ``exit_after_s`` (``kafka.auth_failure_exit_s``; 0 = never) raises
  `FatalKafkaError`: the worker exits non-zero and its supervisor restarts it; so does any error
  librdkafka marks fatal (with an error callback registered, it reports them only there).

`LibrdkafkaLogFilter` demotes librdkafka's own ``FAIL`` log lines to DEBUG: with an error
callback registered, librdkafka reports the same failure as an error event, logged here.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass

from confluent_kafka import KafkaError

from consumer.clock import Clock
from consumer.errors import FatalKafkaError
from consumer.metrics import Metrics
from consumer.telemetry.logs import librdkafka_logger as rate_limited_librdkafka_logger

log = logging.getLogger(__name__)

_KINDS: dict[int, str] = {
    KafkaError._AUTHENTICATION: "authentication",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication",
    KafkaError._SSL: "tls",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "authorization",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "authorization",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "authorization",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "authorization",
}
_HINTS = {
    "authentication": "check the SASL mechanism, user name and password",
    "tls": "check ssl.ca.location and the broker certificate's names",
    "authorization": "grant the ACLs `python -m consumer.security.acls` lists for this scorer",
}
_TIMING = re.compile(r" \(after \d+ms in state [A-Z_]+\)")


def security_kind(code: int) -> str | None:
    """``authentication``, ``tls`` or ``authorization`` for a security failure, else None."""
    return _KINDS.get(code)


@dataclass(frozen=True, slots=True)
class BrokerEvent:
    """One error librdkafka reported, as plain values."""

    code: int
    name: str
    text: str
    at: float | None = None  # monotonic time librdkafka reported it; None: when handled
    fatal: bool = False  # the client cannot continue (e.g. fenced by a newer member)


def event_of(err: KafkaError, at: float | None = None) -> BrokerEvent:
    return BrokerEvent(err.code(), err.name(), _TIMING.sub("", err.str()), at, err.fatal())


class KafkaHealth:
    """Security-failure episodes of one worker's Kafka clients, and the bound on them."""

    def __init__(
        self,
        clock: Clock,
        metrics: Metrics | None,
        exit_after_s: float,
        identity: str = "",
        probe_interval_s: float = 5.0,
        repeat_window_s: float = 30.0,
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._exit_after_s = exit_after_s
        self._identity = identity  # e.g. "user 'scorer' (SCRAM-SHA-512)": no secret
        self._probe_interval_s = probe_interval_s
        self._repeat_window_s = repeat_window_s
        self._events: deque[BrokerEvent] = deque()
        self._failing: tuple[float, str, str] | None = None  # (since, kind, reason)
        self._next_probe = 0.0
        self._last_logged: dict[str, float] = {}

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's ``error_cb``: records the fact, never raises."""
        try:
            self._events.append(event_of(err, self._clock.monotonic()))
        except Exception:  # a callback must never raise into librdkafka
            return

    def report(self, event: BrokerEvent) -> None:
        """An error seen on the loop's own thread (e.g. a partition error from a poll)."""
        self._events.append(event)

    @property
    def failing(self) -> str | None:
        """The kind of the current security failure, if one is going on."""
        return None if self._failing is None else self._failing[1]

    def recovered(self) -> None:
        """The brokers answered as they should: any failure episode is over."""
        if self._failing is not None:
            since, kind, _ = self._failing
            log.info("Kafka %s works again after %.0f s", kind, self._clock.monotonic() - since)
            self._failing = None

    def check(self) -> None:
        """Act on what was recorded; raises `FatalKafkaError` once an episode outlasts the bound."""
        now = self._clock.monotonic()
        while self._events:
            self._handle(self._events.popleft(), now)
        if self._failing is None or self._exit_after_s <= 0:
            return
        since, kind, reason = self._failing
        if now - since >= self._exit_after_s:
            raise FatalKafkaError(
                f"Kafka {kind} failing for {now - since:.0f} s{self._who()}: {reason}"
            )

    def wants_probe(self) -> bool:
        """True every ``probe_interval_s`` while failing: time to ask the broker for metadata."""
        now = self._clock.monotonic()
        if self._failing is None or now < self._next_probe:
            return False
        self._next_probe = now + self._probe_interval_s
        return True

    def _handle(self, event: BrokerEvent, now: float) -> None:
        if event.fatal:  # with an error callback, librdkafka reports fatal errors only here
            raise FatalKafkaError(f"fatal Kafka client error: {event.name}: {event.text}")
        kind = security_kind(event.code)
        if kind is None:
            self._log_rate_limited(event, now)
            return
        if self._failing is not None:
            return  # this episode was reported already
        since = now if event.at is None else min(event.at, now)
        self._failing = (since, kind, event.text)
        self._next_probe = now + self._probe_interval_s
        if self._metrics is not None:
            self._metrics.errors.labels(f"kafka_{kind}").inc()
        bound = (
            f"; exiting in {self._exit_after_s:.0f} s unless it recovers"
            if self._exit_after_s > 0
            else ""
        )
        log.error(
            "Kafka %s failed%s: %s (%s)%s",
            kind, self._who(), event.text, _HINTS[kind], bound,
        )  # fmt: skip

    def _log_rate_limited(self, event: BrokerEvent, now: float) -> None:
        last = self._last_logged.get(event.name)
        if last is not None and now - last < self._repeat_window_s:
            return
        self._last_logged[event.name] = now
        log.warning("Kafka client error %s: %s", event.name, event.text)

    def _who(self) -> str:
        return f" as {self._identity}" if self._identity else ""


class LibrdkafkaLogFilter(logging.Filter):
    """Demotes librdkafka's ``FAIL`` lines to DEBUG: the error callback reports them once."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and args[0] == "FAIL" and record.levelno > 10:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def librdkafka_logger(name: str | None = None) -> logging.Logger:
    """The logger handed to librdkafka clients: by default the rate-limited
    ``consumer.librdkafka`` logger (`consumer.telemetry.logs`), with `LibrdkafkaLogFilter`
    attached once and ahead of the rate limit (a demoted line spends no budget)."""
    logger = rate_limited_librdkafka_logger() if name is None else logging.getLogger(name)
    if not any(isinstance(f, LibrdkafkaLogFilter) for f in logger.filters):
        logger.filters.insert(0, LibrdkafkaLogFilter())
    return logger


def identity_of(properties: dict[str, str]) -> str:
    """Who the client authenticates as, for log lines: never a secret."""
    user = properties.get("sasl.username")
    mechanism = properties.get("sasl.mechanism") or properties.get("sasl.mechanisms") or ""
    if user:
        return f"user {user!r}" + (f" ({mechanism})" if mechanism else "")
    protocol = properties.get("security.protocol", "")
    return protocol.upper() if protocol else ""
