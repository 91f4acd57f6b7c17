"""How the process ends when something fails: one line naming the cause, and an exit code.

Used by the CLI and by each forked worker, so a failure reads the same wherever it happens.
Codes (documented in the README):

    2   configuration error (also bad command-line arguments)
    1   another startup or runtime failure (port in use, registry unreachable, model error, ...)
    69  a dependency stayed unreachable past its bound (``kafka.unreachable_exit_s``)
    70  an unexpected internal error (the traceback is logged at DEBUG)
    75  an exactly-once transaction stalled (``delivery.transaction_stall_s``)
    130 interrupted (Ctrl-C)

librdkafka and the pure packages raise their own exceptions; the edges translate the expected
ones into this package's tree. `describe` still classifies any that slip through, so no startup
failure ever prints a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from consumer.errors import ConfigError, DependencyLostError, StartupError, StreamScorerError

EXIT_CONFIG = 2
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 69
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Failure:
    code: int
    line: str  # one line, no traceback
    expected: bool  # False: a bug; the caller logs the traceback at DEBUG


def describe(exc: BaseException) -> Failure:
    """The exit code and the one line to print for `exc`."""
    if isinstance(exc, KeyboardInterrupt):
        return Failure(EXIT_INTERRUPTED, "interrupted", True)
    if isinstance(exc, ConfigError):
        return Failure(EXIT_CONFIG, f"configuration error: {_one_line(exc)}", True)
    if isinstance(exc, StartupError):
        return Failure(EXIT_FAILURE, f"cannot start: {_one_line(exc)}", True)
    if isinstance(exc, DependencyLostError):
        return Failure(EXIT_UNAVAILABLE, f"giving up: {_one_line(exc)}", True)
    if isinstance(exc, StreamScorerError):
        return Failure(EXIT_FAILURE, f"{type(exc).__name__}: {_one_line(exc)}", True)
    if isinstance(exc, OSError):
        return Failure(EXIT_FAILURE, f"{type(exc).__name__}: {_one_line(exc)}", True)
    text = f"internal error: {type(exc).__name__}: {_one_line(exc)}"
    return Failure(EXIT_INTERNAL, f"{text} (--log-level debug logs the traceback)", False)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def signal_exit_code(exitcode: int) -> int:
    """A child's `multiprocessing` exit code as a shell would report it (killed by N: 128 + N)."""
    return 128 - exitcode if exitcode < 0 else exitcode
