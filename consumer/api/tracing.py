"""Trace context over HTTP: a ranking request's ``traceparent`` in, the scorer's own out.

The response carries ``traceparent`` (and the request's ``tracestate``) with the request's trace
id and flags and the scorer's span id as the parent, like a ranked list on the stream
(`consumer.telemetry.tracing.continue_context`). A malformed header is ignored and counted in
``stream_scorer_trace_context_dropped_total{source="http"}``; it never fails the request.
With spans on, the request's span (`consumer.telemetry.otel`) is that parent.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumer.config import TracingConfig
from consumer.metrics import Metrics
from consumer.telemetry.tracecontext import TraceContext, extract, new_span_ids
from consumer.telemetry.tracing import RequestSpan, Spans, continue_context


class RequestTrace:
    """One request's incoming context, its span (when spans are on) and its response headers."""

    def __init__(
        self, incoming: TraceContext | None, span: RequestSpan | None, config: TracingConfig
    ) -> None:
        self.incoming = incoming
        self.span = span
        self._config = config

    def response_headers(self) -> dict[str, str]:
        if not self._config.propagate:
            return {}
        outgoing = self.span.context if self.span is not None else None
        if outgoing is None:
            outgoing = continue_context(self.incoming, new_span_ids(1)[0], self._config.missing)
        return {} if outgoing is None else {k: v.decode() for k, v in outgoing.headers()}

    def log_fields(self) -> dict[str, str]:
        return {} if self.incoming is None else {"trace_id": self.incoming.trace_id.decode()}

    def end(self, status: int, attributes: dict[str, str | float]) -> None:
        if self.span is not None:
            self.span.end(status, attributes)


class HttpTracing:
    """Starts each request's `RequestTrace`."""

    def __init__(self, config: TracingConfig, metrics: Metrics, spans: Spans | None = None) -> None:
        self._config = config
        self._metrics = metrics
        self._spans = spans

    def begin(self, headers: Iterable[tuple[str, str]], path: str) -> RequestTrace:
        found = extract(headers)
        if found.dropped is not None:
            self._metrics.trace_context_dropped.labels("http", found.dropped).inc()
        span = None if self._spans is None else self._spans.request(found.context, path)
        return RequestTrace(found.context, span, self._config)
