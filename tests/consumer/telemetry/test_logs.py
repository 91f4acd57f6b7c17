"""Log output: JSON lines with their fields, the CLI switch, librdkafka's lines rate-limited."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from consumer.cli import _configure_logs, build_parser
from consumer.config import LogsConfig, load_config
from consumer.stream.kafka import KafkaSink
from consumer.telemetry.logs import (
    LIBRDKAFKA_LOGGER,
    RateLimit,
    bind_worker,
    configure_logging,
    librdkafka_logger,
    log_context,
)


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    bind_worker(None)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_worker_and_ids(out: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=out)
    bind_worker(3)
    log = logging.getLogger("consumer.test")
    with log_context(request_id="r-1", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
        log.warning("scored %d jobs", 7)
    log.info("plain", extra={"trace_id": "abc"})
    first, second = lines(out)
    assert first["level"] == "WARNING"
    assert first["logger"] == "consumer.test"
    assert first["message"] == "scored 7 jobs"
    assert first["worker"] == 3
    assert (first["request_id"], first["trace_id"]) == ("r-1", "4bf92f3577b34da6a3ce929d0e0e4736")
    assert str(first["timestamp"]).endswith("Z")
    assert "T" in str(first["timestamp"])
    assert second["trace_id"] == "abc"
    assert "request_id" not in second


def test_exceptions_are_one_json_line(out: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("consumer.test").exception("failed")
    (line,) = lines(out)
    assert "ValueError: boom" in str(line["exception"])


def test_text_is_the_default(out: io.StringIO) -> None:
    configure_logging("INFO", stream=out)
    logging.getLogger("consumer.test").info("hello")
    assert out.getvalue().rstrip().endswith("INFO consumer.test: hello")


def test_log_format_flag_wins_over_the_config_key() -> None:
    parser = build_parser()
    assert parser.parse_args(["--log-format", "json", "serve"]).log_format == "json"
    assert parser.parse_args(["serve"]).log_format is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "xml", "serve"])
    config = load_config({"STREAM_SCORER__LOGS__FORMAT": "json"})
    assert config.logs == LogsConfig(format="json")


def test_config_key_applies_without_the_flag(out: io.StringIO) -> None:
    args = build_parser().parse_args(["serve"])
    _configure_logs(args, load_config({"STREAM_SCORER__LOGS__FORMAT": "json"}))
    handler = logging.getLogger().handlers[0]
    assert type(handler.formatter).__name__ == "JsonFormatter"


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord(LIBRDKAFKA_LOGGER, logging.WARNING, __file__, 1, "%s [%s] %s",
                             ("FAIL", "rdkafka#producer-1", text), None)  # fmt: skip


def test_rate_limit_lets_a_burst_through_then_a_steady_rate_and_counts_the_rest() -> None:
    clock = Ticks()
    limit = RateLimit(per_s=2.0, burst=3, clock=clock)
    passed = [limit.filter(record(str(i))) for i in range(10)]
    assert passed == [True] * 3 + [False] * 7
    clock.now = 1.0  # two tokens back
    first = record("later")
    assert limit.filter(first)
    assert first.getMessage() == "FAIL [rdkafka#producer-1] later (7 earlier lines suppressed)"
    assert (first.facility, first.client, first.suppressed) == (  # type: ignore[attr-defined]
        "FAIL", "rdkafka#producer-1", 7)  # fmt: skip
    assert limit.filter(record("again"))
    assert not limit.filter(record("over"))


def test_librdkafkas_own_lines_reach_the_rate_limited_logger() -> None:
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    handler = Capture()
    logger = librdkafka_logger()
    limit = next(f for f in logger.filters if isinstance(f, RateLimit))
    limit.configure(per_s=0.5, burst=2)
    logger.addHandler(handler)
    # Refused connections are FAIL lines, which the Kafka clients' health record reports once and
    # demotes to DEBUG (consumer.stream.kafka_health): at DEBUG they still pass the rate limit.
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        # Nothing listens on port 1: librdkafka logs each refused connection attempt.
        sink = KafkaSink("127.0.0.1:1", {"reconnect.backoff.ms": "10",
                                          "reconnect.backoff.max.ms": "10"})  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and limit.suppressed < 3:
            sink.poll(0.1)
        suppressed = limit.suppressed
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        limit.configure(5.0, 50)
    assert 1 <= len(captured) <= 3
    assert all(getattr(r, "facility", None) for r in captured)
    assert suppressed >= 3
