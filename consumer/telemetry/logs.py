"""Log output: plain text or one JSON object per line, and librdkafka's own lines, rate-limited.

Only the entry point configures handlers (`configure_logging`); modules log through
``getLogger(__name__)`` as always. A JSON line carries ``timestamp`` (UTC, ISO 8601, ms),
``level``, ``logger``, ``message``, ``worker`` (the scorer's index, once `bind_worker` ran in the
process), ``request_id`` / ``trace_id`` where there is one (from `log_context` or a call's
``extra``), ``exception`` with a traceback, and ``facility`` / ``client`` for librdkafka's lines.

librdkafka's lines reach Python through the clients' ``logger`` (forwarded while the owning
thread polls) as ``"%s [%s] %s"`` (facility, client name, text); `librdkafka_logger` is that
logger, named ``consumer.librdkafka``, with a token bucket that lets through a burst and then a
steady rate, and reports how many lines it suppressed on the next line it lets through.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO

LIBRDKAFKA_LOGGER = "consumer.librdkafka"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("request_id", "trace_id")

_NO_FIELDS: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar(
    "stream_scorer_log_context", default=_NO_FIELDS
)
_worker: int | None = None


def bind_worker(index: int | None) -> None:
    """Name this process's worker index in every JSON line (a forked worker calls it once)."""
    global _worker
    _worker = index


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add ``request_id`` / ``trace_id`` to every line logged in this context (task or thread)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, object] = {
            "timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if _worker is not None:
            out["worker"] = _worker
        out.update(_context.get())
        for key in (*CONTEXT_FIELDS, "facility", "client", "suppressed"):
            value = record.__dict__.get(key)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class RateLimit(logging.Filter):
    """A token bucket: `burst` lines at once, then `per_s` lines a second; the rest are dropped
    and counted on the next line let through (``suppressed``)."""

    def __init__(
        self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._clock = clock
        self.configure(per_s, burst)

    def configure(self, per_s: float, burst: int) -> None:
        with self._lock:
            self.per_s, self.burst = per_s, burst
            self._tokens, self._last, self.suppressed = float(burst), self._clock(), 0

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_s)
            self._last = now
            if self._tokens < 1.0:
                self.suppressed += 1
                return False
            self._tokens -= 1.0
            suppressed, self.suppressed = self.suppressed, 0
        _name_librdkafka_fields(record)
        if suppressed:
            record.suppressed = suppressed
            record.msg = f"{record.msg} (%d earlier lines suppressed)"
            record.args = (*_args(record), suppressed)
        return True


def _args(record: logging.LogRecord) -> tuple[object, ...]:
    args = record.args
    return args if isinstance(args, tuple) else ()


def _name_librdkafka_fields(record: logging.LogRecord) -> None:
    """librdkafka logs ``"%s [%s] %s"`` with (facility, client name, text)."""
    args = _args(record)
    if record.msg == "%s [%s] %s" and len(args) == 3:
        record.facility, record.client = str(args[0]), str(args[1])


def librdkafka_logger() -> logging.Logger:
    """The logger to hand librdkafka clients (``logger=``), with its rate limit in place."""
    logger = logging.getLogger(LIBRDKAFKA_LOGGER)
    if not any(isinstance(f, RateLimit) for f in logger.filters):
        logger.addFilter(RateLimit(5.0, 50))
    return logger


def configure_logging(
    level: str, fmt: str = "text", librdkafka_lines_per_s: float = 5.0,
    librdkafka_burst: int = 50, stream: IO[str] | None = None,
) -> None:  # fmt: skip
    """The entry point's one logging set-up: a handler on the root logger, replacing any."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for f in librdkafka_logger().filters:
        if isinstance(f, RateLimit):
            f.configure(librdkafka_lines_per_s, librdkafka_burst)
