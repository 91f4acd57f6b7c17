"""The tracing seam: W3C trace context continued by the scorer, OpenTelemetry spans optional.

Two layers, both configured by ``[tracing]`` (`consumer.config.TracingConfig`):

- **Propagation** (stdlib only, on by default): the trace context a job or request arrives with
  is continued on what the scorer writes, with the scorer's own span id as the parent
  (`continue_context`). Jobs without one get none, or a new root (``tracing.missing``).
- **Spans** (``tracing.spans = true``, the ``otel`` extra): `build_spans` imports
  `consumer.telemetry.otel` and returns its `Spans`; with spans off it returns None and nothing of
  OpenTelemetry is imported or called: the loop and the API skip every span step on a None check.

The protocols below are what the loop and the API see of the span layer, so neither imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from consumer.errors import ConfigError
from consumer.telemetry.tracecontext import TraceContext, new_root

if TYPE_CHECKING:
    from consumer.config import TracingConfig
    from consumer.stream.outcome import BatchOutcome, Output, Rejected
    from consumer.stream.records import InMessage


class BatchSpans(Protocol):
    """The spans of one micro-batch on the stream, from its decode to its commit."""

    def job(
        self, position: int, parent: TraceContext | None, result: Output | Rejected
    ) -> TraceContext | None:
        """Record the scorer's span for one job; the context to write (the incoming tracestate
        kept), or None if nothing was recorded for it."""
        ...

    def delivered(self) -> None:
        """The batch's outputs were handed to the producer: the produce step ends now."""
        ...

    def committed(self) -> None:
        """The delivery mode's service call after the batch ended: close every span."""
        ...


class RequestSpan(Protocol):
    """One ranking API request's span."""

    @property
    def context(self) -> TraceContext | None:
        """The span's own context (None when not recorded)."""
        ...

    def end(self, status: int, attributes: dict[str, str | float]) -> None: ...


class Spans(Protocol):
    """OpenTelemetry spans of one worker (`consumer.telemetry.otel.OtelSpans`)."""

    def stream_batch(
        self, batch: Sequence[InMessage], contexts: Sequence[TraceContext | None],
        outcome: BatchOutcome,
    ) -> BatchSpans: ...  # fmt: skip

    def request(self, parent: TraceContext | None, path: str) -> RequestSpan: ...

    def shutdown(self) -> None:
        """Export what is buffered (bounded by the export timeout) and stop."""
        ...


def build_spans(config: TracingConfig, worker_index: int = 0) -> Spans | None:
    """The span layer when ``tracing.spans`` is on (OpenTelemetry imported only then)."""
    if not config.spans:
        return None
    try:
        from consumer.telemetry.otel import OtelSpans
    except ImportError as exc:
        raise ConfigError(
            "tracing.spans needs OpenTelemetry: pip install 'stream-scorer[otel]'",
            key="tracing.spans",
        ) from exc
    return OtelSpans.from_config(config, worker_index)


def continue_context(
    incoming: TraceContext | None, span_id: bytes, missing: str
) -> TraceContext | None:
    """What the scorer writes after handling something that arrived with `incoming`.

    Same trace id, flags and tracestate with `span_id` as the parent; without an incoming context,
    none (``missing = "none"``) or a new unsampled root (``"new_root"``).
    """
    if incoming is not None:
        return incoming.child(span_id)
    if missing == "new_root":
        return new_root(span_id)
    return None
