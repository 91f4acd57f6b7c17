"""KafkaHealth: one line per security failure, rate-limited noise, recovery, the exit bound."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.errors import FatalKafkaError
from consumer.metrics import Metrics
from consumer.stream.kafka_health import (
    KafkaHealth,
    identity_of,
    librdkafka_logger,
    security_kind,
)

AUTH_TEXT = (
    "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(after 314ms in state AUTH_REQ)"
)


def auth_error() -> KafkaError:
    return KafkaError(KafkaError._AUTHENTICATION, AUTH_TEXT)


def health(bound_s: float = 10.0) -> tuple[KafkaHealth, ManualClock, Metrics]:
    clock, metrics = ManualClock(), Metrics(CollectorRegistry())
    return KafkaHealth(clock, metrics, bound_s, "user 'scorer' (SCRAM-SHA-512)"), clock, metrics


def errors(metrics: Metrics, kind: str) -> float:
    return metrics.registry.get_sample_value("stream_scorer_errors_total", {"kind": kind}) or 0


def test_repeated_authentication_failures_are_one_error_line_and_one_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h, clock, metrics = health()
    with caplog.at_level(logging.INFO, logger="consumer.stream.kafka_health"):
        for _ in range(30):  # librdkafka retries about three times a second
            h.on_error(auth_error())
            h.check()
            clock.advance(0.3)
    lines = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert "Kafka authentication failed as user 'scorer' (SCRAM-SHA-512)" in message
    assert "invalid credentials" in message
    assert "after 314ms" not in message  # the changing timing would defeat grep and dedupe
    assert "exiting in 10 s unless it recovers" in message
    assert errors(metrics, "kafka_authentication") == 1
    assert h.failing == "authentication"


def test_the_bound_raises_a_fatal_error_naming_the_cause() -> None:
    h, clock, _ = health(bound_s=10)
    h.on_error(auth_error())
    h.check()
    clock.advance(9.9)
    h.check()
    clock.advance(0.2)
    with pytest.raises(FatalKafkaError, match=r"authentication failing for 10 s as user 'scorer'"):
        h.check()


def test_recovery_ends_the_episode_and_restarts_the_clock(caplog: pytest.LogCaptureFixture) -> None:
    h, clock, metrics = health(bound_s=10)
    h.on_error(auth_error())
    h.check()
    clock.advance(8)
    h.recovered()
    assert h.failing is None
    clock.advance(8)
    h.check()  # no exit: the failure ended
    h.on_error(auth_error())
    with caplog.at_level(logging.ERROR):
        h.check()
    assert errors(metrics, "kafka_authentication") == 2  # a new episode
    clock.advance(9)
    h.check()


def test_a_zero_bound_never_exits() -> None:
    h, clock, _ = health(bound_s=0)
    h.on_error(auth_error())
    h.check()
    clock.advance(10_000)
    h.check()
    assert h.failing == "authentication"


def test_probes_are_asked_for_only_while_failing_and_at_most_every_interval() -> None:
    h, clock, _ = health()
    assert not h.wants_probe()
    h.on_error(KafkaError(KafkaError._SSL, "certificate verify failed"))
    h.check()
    assert h.failing == "tls"
    assert not h.wants_probe()  # the first probe waits one interval
    clock.advance(5)
    assert h.wants_probe()
    assert not h.wants_probe()
    clock.advance(5)
    assert h.wants_probe()


def test_other_errors_are_rate_limited_per_name(caplog: pytest.LogCaptureFixture) -> None:
    h, clock, metrics = health()
    with caplog.at_level(logging.WARNING, logger="consumer.stream.kafka_health"):
        for _ in range(100):
            h.on_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
            h.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
            h.check()
            clock.advance(0.5)  # 50 s in all: two windows of 30 s
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("_TRANSPORT" in m for m in warnings) == 2
    assert sum("_ALL_BROKERS_DOWN" in m for m in warnings) == 2
    assert h.failing is None  # unreachable is not a security failure
    assert errors(metrics, "kafka_authentication") == 0


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (KafkaError._AUTHENTICATION, "authentication"),
        (KafkaError.SASL_AUTHENTICATION_FAILED, "authentication"),
        (KafkaError._SSL, "tls"),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "authorization"),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, "authorization"),
        (KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "authorization"),
        (KafkaError._TRANSPORT, None),
        (KafkaError._ALL_BROKERS_DOWN, None),
    ],
)
def test_security_kinds(code: int, kind: str | None) -> None:
    assert security_kind(code) == kind


def test_the_callback_never_raises() -> None:
    h, _, _ = health()
    h.on_error("not a KafkaError")  # type: ignore[arg-type]
    h.check()
    assert h.failing is None


def test_identity_names_the_user_never_the_password() -> None:
    props = {"sasl.username": "scorer", "sasl.password": "pw", "sasl.mechanism": "PLAIN"}
    assert identity_of(props) == "user 'scorer' (PLAIN)"
    assert identity_of({"security.protocol": "ssl"}) == "SSL"
    assert identity_of({}) == ""


def test_librdkafka_fail_lines_are_demoted_to_debug(caplog: pytest.LogCaptureFixture) -> None:
    logger = librdkafka_logger("tests.librdkafka")
    librdkafka_logger("tests.librdkafka")  # idempotent: one filter
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="tests.librdkafka"):
        logger.error("%s [%s] %s", "FAIL", "rdkafka#consumer-1", "auth failed")
        logger.error("%s [%s] %s", "TXNERR", "rdkafka#producer-1", "transaction failed")
    assert [r.args[0] for r in caplog.records if isinstance(r.args, tuple)] == ["TXNERR"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tests.librdkafka"):
        logger.error("%s [%s] %s", "FAIL", "rdkafka#consumer-1", "auth failed")
    assert [r.levelname for r in caplog.records] == ["DEBUG"]


def test_a_fatal_client_error_is_fatal_at_once() -> None:
    h, _, _ = health(bound_s=0)
    h.on_error(KafkaError(KafkaError._FATAL, "Fenced by a newer instance", fatal=True))
    with pytest.raises(FatalKafkaError, match="Fenced by a newer instance"):
        h.check()
