"""W3C Trace Context (https://www.w3.org/TR/trace-context/): parse, validate and continue.

A job's Kafka headers (or a ranking request's HTTP headers) may carry ``traceparent`` and
``tracestate``. The scorer continues that trace: what it writes (the ranked list, the
dead-letter record, the HTTP response) carries the same trace id and flags with the scorer's own
span id as the parent, and the ``tracestate`` unchanged.

Invariants:
- Pure and cheap: bytes in, bytes out, no OpenTelemetry import; one compiled regex per value.
- Never raises on input: a malformed ``traceparent`` yields no context and a malformed
  ``tracestate`` is dropped while the ``traceparent`` is kept; `Extracted.dropped` names what was
  dropped so the caller can count it.
- Version ``00`` values are exactly 55 characters; a higher version (never ``ff``) may carry more
  fields after a ``-``, which are ignored and not forwarded (the scorer writes version ``00``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
_KEY = rb"(?:[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
_VALUE = rb"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(rb"[ \t]*(" + _KEY + rb")=" + _VALUE + rb"[ \t]*")
_MAX_MEMBERS = 32
_ODD_HEX = b"13579bdf"
_MAX_STATE_BYTES = 8192  # far above the 512 the spec asks every vendor to propagate


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A position in a trace: lowercase hex ASCII ids, as they travel in headers."""

    trace_id: bytes  # 32 hex digits
    span_id: bytes  # 16 hex digits: the parent of whatever continues this context
    flags: bytes  # 2 hex digits; bit 0 = sampled
    state: bytes | None = None  # tracestate, forwarded unchanged

    @property
    def sampled(self) -> bool:
        return self.flags[1] in _ODD_HEX  # bit 0 of the flags byte

    @property
    def traceparent(self) -> bytes:
        return b"00-" + self.trace_id + b"-" + self.span_id + b"-" + self.flags

    def child(self, span_id: bytes) -> TraceContext:
        """The same trace with `span_id` (the scorer's span) as the parent of what follows."""
        return TraceContext(self.trace_id, span_id, self.flags, self.state)

    def headers(self) -> list[tuple[str, bytes]]:
        """``traceparent`` and, when there is one, ``tracestate``."""
        out = [(TRACEPARENT, self.traceparent)]
        if self.state:
            out.append((TRACESTATE, self.state))
        return out


@dataclass(frozen=True, slots=True)
class Extracted:
    """What a carrier's headers yield: a context (or none) and what was dropped as malformed."""

    context: TraceContext | None = None
    dropped: str | None = None  # "traceparent" | "tracestate" | None


NOTHING = Extracted()


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(trace id, parent id, flags) of a valid ``traceparent`` value, else None."""
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


def valid_tracestate(value: bytes) -> bool:
    """A ``tracestate`` list: at most 32 ``key=value`` members, each key once."""
    if len(value) > _MAX_STATE_BYTES:
        return False
    keys: set[bytes] = set()
    for member in value.split(b","):
        if not member.strip(b" \t"):
            continue  # empty members are allowed
        match = _MEMBER.fullmatch(member)
        if match is None or match.group(1) in keys:
            return False
        keys.add(match.group(1))
    return len(keys) <= _MAX_MEMBERS


def extract(headers: Iterable[tuple[str, bytes | str | None]]) -> Extracted:
    """The trace context in a carrier's headers (names compared case-insensitively).

    More than one ``traceparent`` is malformed; several ``tracestate`` values are one list
    joined with commas, as the spec says for repeated HTTP headers.
    """
    parents: list[bytes] = []
    states: list[bytes] = []
    for name, raw in headers:
        lowered = name.lower()
        if lowered == TRACEPARENT:
            parents.append(_as_bytes(raw))
        elif lowered == TRACESTATE:
            states.append(_as_bytes(raw))
    if not parents:
        return NOTHING
    ids = parse_traceparent(parents[0].strip(b" \t")) if len(parents) == 1 else None
    if ids is None:
        return Extracted(None, TRACEPARENT)
    state = b",".join(states) if states else None
    if state is not None and not valid_tracestate(state):
        return Extracted(TraceContext(*ids), TRACESTATE)
    return Extracted(TraceContext(*ids, state or None))


def _as_bytes(raw: bytes | str | None) -> bytes:
    if raw is None:
        return b""
    if isinstance(raw, str):
        try:
            return raw.encode("ascii")
        except UnicodeEncodeError:
            return b"\xff"  # never valid: counted as malformed
    return raw


def new_span_ids(n: int) -> list[bytes]:
    """`n` random 64-bit span ids as hex (one system call for the batch).

    An all-zero id (probability 2**-64 each) would be invalid; it is replaced.
    """
    blob = os.urandom(8 * n).hex().encode()
    ids = [blob[i : i + 16] for i in range(0, 16 * n, 16)]
    return [i if i != _ZERO_SPAN else b"0000000000000001" for i in ids]


def new_root(span_id: bytes) -> TraceContext:
    """A new trace whose first span is `span_id`, not sampled (nothing records it)."""
    trace_id = os.urandom(16).hex().encode()
    if trace_id == _ZERO_TRACE:
        trace_id = b"0" * 31 + b"1"
    return TraceContext(trace_id, span_id, b"00")
