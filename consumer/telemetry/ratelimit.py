"""Repeated log lines, once per interval: a lost dependency must not flood the log.

`RateLimitedLog` has the ``log(level, msg, *args)`` method librdkafka's Python client calls for
each of its log lines (pass it as a client's ``logger``), and the scorer uses it for its own
repeated warnings. Lines are grouped by their text with digits removed (``Connect to
ipv4#127.0.0.1:9092 failed ... (after 0ms ...)`` repeats with other numbers); the first of a group
is logged, the rest are counted until the group's interval has passed, and the next one logged
says how many were suppressed. Memory is bounded: groups idle for an interval are forgotten.
"""

from __future__ import annotations

import logging
import re

from consumer.clock import Clock

_DIGITS = re.compile(r"\d+")
MAX_GROUPS = 1_000


class RateLimitedLog:
    """Logs each group of similar lines at most once per ``interval_s`` through ``logger``."""

    def __init__(
        self,
        logger: logging.Logger,
        clock: Clock,
        interval_s: float = 30.0,
        level: int | None = None,
    ) -> None:
        self._logger = logger
        self._clock = clock
        self._interval_s = interval_s
        self._level = level  # every line at this level (e.g. DEBUG for a CLI's client)
        self._groups: dict[str, tuple[float, int]] = {}  # key -> (logged at, suppressed since)

    def log(self, level: int, msg: str, *args: object) -> None:
        """Log ``msg % args`` unless a similar line was logged within the interval."""
        level = self._level if self._level is not None else level
        if not self._logger.isEnabledFor(level):
            return
        text = msg % args if args else msg
        key = f"{level}:{_DIGITS.sub('#', text)}"
        now = self._clock.monotonic()
        logged_at, suppressed = self._groups.get(key, (-float("inf"), 0))
        if now - logged_at < self._interval_s:
            self._groups[key] = (logged_at, suppressed + 1)
            return
        if len(self._groups) >= MAX_GROUPS:
            self._forget(now)
        self._groups[key] = (now, 0)
        if suppressed:
            text = f"{text} ({suppressed} similar lines suppressed)"
        self._logger.log(level, "%s", text)

    def _forget(self, now: float) -> None:
        stale = [k for k, (at, _) in self._groups.items() if now - at >= self._interval_s]
        for key in stale or list(self._groups):
            del self._groups[key]
