"""Trace context through the stream: each job's context read from its headers and continued on
its ranked list or dead-letter record (`consumer.telemetry.tracing` has the rules and the span
protocols).

`StreamTracing.start` runs once per delivered batch: headers are parsed only for records that
have some (a record without headers costs one truth test), malformed values are counted in
``stream_scorer_trace_context_dropped_total{source="kafka"}`` and otherwise ignored, and one
system call draws the batch's span ids. With spans on, the batch's `BatchSpans` records the
scorer's span of each sampled job, whose id then becomes the parent written downstream.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumer.config import TracingConfig
from consumer.metrics import Metrics
from consumer.stream.outcome import BatchOutcome, Output, Rejected
from consumer.stream.records import InMessage
from consumer.telemetry.tracecontext import TraceContext, extract, new_span_ids
from consumer.telemetry.tracing import BatchSpans, Spans, continue_context


class BatchTrace:
    """One batch's incoming contexts and what each of its outputs carries."""

    def __init__(
        self, contexts: list[TraceContext | None], config: TracingConfig,
        spans: BatchSpans | None,
    ) -> None:  # fmt: skip
        self.contexts = contexts
        self.spans = spans
        self._propagate = config.propagate
        self._missing = config.missing
        needed = config.missing == "new_root" or any(c is not None for c in contexts)
        self._ids = new_span_ids(len(contexts)) if needed and self._propagate else []

    def headers(self, position: int, result: Output | Rejected) -> list[tuple[str, bytes]]:
        """The trace headers of the record written for the job at `position` (maybe none)."""
        incoming = self.contexts[position]
        recorded = None
        if self.spans is not None and (incoming is not None or self._missing == "new_root"):
            recorded = self.spans.job(position, incoming, result)
        if not self._propagate:
            return []
        if recorded is not None:
            return recorded.headers()
        if not self._ids:
            return []
        out = continue_context(incoming, self._ids[position], self._missing)
        return [] if out is None else out.headers()

    def log_fields(self, position: int) -> dict[str, str]:
        """``trace_id`` for a log line about the job at `position`, when it has one."""
        context = self.contexts[position]
        return {} if context is None else {"trace_id": context.trace_id.decode()}

    def delivered(self) -> None:
        if self.spans is not None:
            self.spans.delivered()

    def committed(self) -> None:
        if self.spans is not None:
            self.spans.committed()


class StreamTracing:
    """Reads jobs' trace context and starts each delivered batch's `BatchTrace`."""

    def __init__(self, config: TracingConfig, metrics: Metrics, spans: Spans | None = None) -> None:
        self._config = config
        self._metrics = metrics
        self._spans = spans

    @property
    def active(self) -> bool:
        return self._config.propagate or self._spans is not None

    def start(self, batch: Sequence[InMessage], outcome: BatchOutcome) -> BatchTrace:
        contexts = [self._context(m) if m.headers else None for m in batch]
        spans = None
        if self._spans is not None:
            spans = self._spans.stream_batch(batch, contexts, outcome)
        return BatchTrace(contexts, self._config, spans)

    def _context(self, msg: InMessage) -> TraceContext | None:
        found = extract(msg.headers)
        if found.dropped is not None:
            self._metrics.trace_context_dropped.labels("kafka", found.dropped).inc()
        return found.context
