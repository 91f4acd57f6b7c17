"""W3C trace context: what is accepted, what is dropped, and what the scorer writes after it."""

from __future__ import annotations

import pytest

from consumer.telemetry.tracecontext import (
    TRACEPARENT,
    TRACESTATE,
    TraceContext,
    extract,
    new_root,
    new_span_ids,
    parse_traceparent,
    valid_tracestate,
)
from consumer.telemetry.tracing import continue_context

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = b"00f067aa0ba902b7"
VALID = b"00-" + TRACE + b"-" + PARENT + b"-01"


def test_a_valid_traceparent_gives_its_ids_and_flags() -> None:
    assert parse_traceparent(VALID) == (TRACE, PARENT, b"01")


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        VALID.upper(),  # hex must be lowercase
        b"00-" + b"0" * 32 + b"-" + PARENT + b"-01",  # all-zero trace id
        b"00-" + TRACE + b"-" + b"0" * 16 + b"-01",  # all-zero parent id
        b"ff-" + TRACE + b"-" + PARENT + b"-01",  # version ff is forbidden
        VALID + b"-extra",  # version 00 is exactly 55 characters
        VALID[:-1],
        b"00-" + TRACE[:-1] + b"-" + PARENT + b"-01",
        b"0x-" + TRACE + b"-" + PARENT + b"-01",
    ],
)
def test_malformed_traceparents_are_refused(value: bytes) -> None:
    assert parse_traceparent(value) is None


def test_a_later_version_may_carry_more_fields() -> None:
    assert parse_traceparent(b"cc-" + TRACE + b"-" + PARENT + b"-01-what-ever") == (
        TRACE,
        PARENT,
        b"01",
    )


def test_extract_keeps_the_context_and_joins_repeated_tracestate() -> None:
    found = extract([("TraceParent", VALID), (TRACESTATE, b"a=1"), (TRACESTATE, b"b@c=2")])
    assert found.dropped is None
    assert found.context == TraceContext(TRACE, PARENT, b"01", b"a=1,b@c=2")
    assert found.context.sampled


def test_extract_without_a_traceparent_finds_nothing_and_drops_nothing() -> None:
    found = extract([("request_id", b"r1"), (TRACESTATE, b"a=1")])
    assert (found.context, found.dropped) == (None, None)


@pytest.mark.parametrize(
    "headers",
    [
        [(TRACEPARENT, b"00-nope")],
        [(TRACEPARENT, VALID), (TRACEPARENT, VALID)],  # two traceparents are ambiguous
        [(TRACEPARENT, None)],
        [(TRACEPARENT, "00-" + "é" * 32)],
    ],
)
def test_a_malformed_traceparent_is_dropped_and_named(
    headers: list[tuple[str, bytes | str | None]],
) -> None:
    found = extract(headers)
    assert (found.context, found.dropped) == (None, TRACEPARENT)


def test_a_malformed_tracestate_is_dropped_but_the_traceparent_kept() -> None:
    found = extract([(TRACEPARENT, VALID), (TRACESTATE, b"Upper=1")])
    assert found.dropped == TRACESTATE
    assert found.context == TraceContext(TRACE, PARENT, b"01", None)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", True),
        (b"a=1, ,b=2", True),  # empty members are allowed
        (b"tenant@vendor=x", True),
        (b"a=1,a=2", False),  # a key at most once
        (b"a", False),
        (b"a=", False),
        (b"a=x,y", False),
        (b",".join(b"k%d=v" % i for i in range(33)), False),  # more than 32 members
    ],
)
def test_tracestate_validation(value: bytes, ok: bool) -> None:
    assert valid_tracestate(value) is ok


def test_the_scorer_continues_the_trace_with_its_own_span_as_parent() -> None:
    incoming = TraceContext(TRACE, PARENT, b"01", b"a=1")
    out = continue_context(incoming, b"1111111111111111", "none")
    assert out is not None
    assert out.headers() == [
        (TRACEPARENT, b"00-" + TRACE + b"-1111111111111111-01"),
        (TRACESTATE, b"a=1"),
    ]


def test_without_an_incoming_context_none_or_a_new_unsampled_root() -> None:
    assert continue_context(None, b"1111111111111111", "none") is None
    root = continue_context(None, b"1111111111111111", "new_root")
    assert root is not None
    assert parse_traceparent(root.traceparent) == (root.trace_id, b"1111111111111111", b"00")
    assert root.trace_id != new_root(b"1111111111111111").trace_id


def test_new_span_ids_are_valid_and_distinct() -> None:
    ids = new_span_ids(1000)
    assert len(set(ids)) == 1000
    assert all(parse_traceparent(b"00-" + TRACE + b"-" + i + b"-00") for i in ids)
