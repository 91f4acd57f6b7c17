"""RateLimitedLog: a repeated line once per interval, with a count of what was suppressed."""

from __future__ import annotations

import logging

import pytest

from consumer.clock import ManualClock
from consumer.telemetry.ratelimit import MAX_GROUPS, RateLimitedLog

LINE = "FAIL [rdkafka#consumer-%d] 127.0.0.1:%d/bootstrap: Connect failed (after %dms)"


def test_similar_lines_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    log = RateLimitedLog(logging.getLogger("t.rl"), clock, interval_s=30)
    with caplog.at_level(logging.INFO, "t.rl"):
        for i in range(220):  # ~22 lines a second for 10 s: what a lost broker produced
            log.log(logging.ERROR, LINE, 1, 9092, i)
            clock.advance(0.05)
        log.log(logging.WARNING, "another line")
        clock.advance(25)
        log.log(logging.ERROR, LINE, 1, 9092, 999)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert messages[0] == LINE % (1, 9092, 0)
    assert messages[1] == "another line"
    assert messages[2] == LINE % (1, 9092, 999) + " (219 similar lines suppressed)"


def test_a_fixed_level_and_a_disabled_level_cost_nothing(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("t.quiet"), ManualClock(), level=logging.DEBUG)
    with caplog.at_level(logging.INFO, "t.quiet"):
        log.log(logging.ERROR, "hidden")
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, "t.quiet"):
        log.log(logging.ERROR, "shown at debug")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "shown at debug")
    ]


def test_memory_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("t.many"), ManualClock(), interval_s=30)
    with caplog.at_level(logging.INFO, "t.many"):
        for i in range(MAX_GROUPS * 3):
            log.log(logging.ERROR, f"distinct line {chr(65 + i % 26) * (i // 26 + 1)}")
    assert len(log._groups) <= MAX_GROUPS
