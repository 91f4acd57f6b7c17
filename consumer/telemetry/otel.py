"""OpenTelemetry spans of the stream and the ranking API (the ``otel`` extra).

Imported only by `consumer.telemetry.tracing.build_spans` when ``tracing.spans`` is on. One
`TracerProvider` per worker (never the global one), exporting through a `BatchSpanProcessor`
with the OTLP/HTTP exporter to ``tracing.endpoint``; tests hand `OtelSpans.with_processor` an
in-memory exporter instead.

What one micro-batch records:

- ``scorer.batch`` (kind CONSUMER, a root: a batch serves many traces) from its decode to its
  commit, with a link to each job's incoming sampled context (``tracing.link_unsampled`` links
  the unsampled ones too: their traces are recorded nowhere, and encoding 512 links costs ~12 us
  a job, ~10% of the scorer's CPU), and children ``decode``, ``features``,
  ``score``, ``encode``, ``produce`` and ``commit`` timed by the loop and the processor (their
  timestamps are taken anyway for the stage histograms; spans are built from them afterwards, so
  the hot path does no span work);
- ``scorer.job`` (kind CONSUMER) for each job whose incoming context is sampled: a child of the
  producer's span in the job's own trace, linked to the batch span, ending when the job's record
  is handed to the producer. Its id is the parent id the ranked list (or dead-letter record)
  carries downstream, so the job's trace reads producer -> scorer -> feed builder.

Sampling: an incoming sampled context is always followed (and records the batch it is in); roots
started here (batches without sampled jobs, requests without a context, new roots) are kept with
probability ``tracing.sample_ratio``; an unsampled incoming context is never recorded.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from consumer.config import TracingConfig
from consumer.stream.outcome import BatchOutcome, Output, Rejected
from consumer.stream.records import InMessage
from consumer.telemetry.tracecontext import TraceContext

STAGES = ("decode", "features", "score", "encode")  # timed by the processor
MAX_LINKS = 4_096  # every job of a batch is linked (batch.max_jobs is 512 by default)
_ROOT = Context()
_INSTRUMENTATION = "stream-scorer"


def _remote(parent: TraceContext) -> SpanContext:
    state = trace.TraceState.from_header([parent.state.decode()]) if parent.state else None
    flags = TraceFlags(int(parent.flags, 16))
    return SpanContext(int(parent.trace_id, 16), int(parent.span_id, 16), True, flags, state)


def _own(span: OtelSpan, parent: TraceContext | None) -> TraceContext:
    """The context a recorded span hands downstream: its ids, sampled, the incoming state."""
    ctx = span.get_span_context()
    state = None if parent is None else parent.state
    return TraceContext(b"%032x" % ctx.trace_id, b"%016x" % ctx.span_id, b"01", state)


class OtelSpans:
    """One worker's tracer: the stream's batch and job spans, the API's request spans."""

    def __init__(
        self, provider: TracerProvider, sample_ratio: float, worker_index: int,
        link_unsampled: bool = False,
    ) -> None:  # fmt: skip
        self._provider = provider
        self.tracer = provider.get_tracer(_INSTRUMENTATION)
        self.sample_ratio = sample_ratio
        self.link_unsampled = link_unsampled
        self.worker_index = worker_index
        self._offset_ns = time.time_ns() - time.perf_counter_ns()
        self._random = random.Random()

    @classmethod
    def from_config(cls, config: TracingConfig, worker_index: int) -> OtelSpans:
        exporter = OTLPSpanExporter(endpoint=config.endpoint,
                                    timeout=config.export_timeout_ms / 1000)  # fmt: skip
        processor = BatchSpanProcessor(exporter, max_queue_size=config.max_queue_spans,
                                       export_timeout_millis=config.export_timeout_ms)  # fmt: skip
        return cls.with_processor(processor, config, worker_index)

    @classmethod
    def with_processor(
        cls, processor: SpanProcessor, config: TracingConfig, worker_index: int
    ) -> OtelSpans:
        resource = Resource.create({
            "service.name": config.service_name,
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
            "scorer.worker": worker_index,
        })  # fmt: skip
        # Roots are sampled here (`sampled_root`), before any span work: the SDK records every
        # root it is asked for and follows remote parents' flags.
        provider = TracerProvider(resource=resource, sampler=ParentBased(root=ALWAYS_ON),
                                  span_limits=SpanLimits(max_links=MAX_LINKS))  # fmt: skip
        provider.add_span_processor(processor)
        return cls(provider, config.sample_ratio, worker_index, config.link_unsampled)

    def sampled_root(self) -> bool:
        return self._random.random() < self.sample_ratio

    def ns(self, perf_counter_s: float) -> int:
        """A `time.perf_counter()` reading as epoch nanoseconds."""
        return int(perf_counter_s * 1e9) + self._offset_ns

    def stream_batch(
        self, batch: Sequence[InMessage], contexts: Sequence[TraceContext | None],
        outcome: BatchOutcome,
    ) -> StreamBatchSpans:  # fmt: skip
        return StreamBatchSpans(self, batch, contexts, outcome)

    def request(self, parent: TraceContext | None, path: str) -> RequestSpans:
        return RequestSpans(self, parent, path)

    def shutdown(self) -> None:
        self._provider.shutdown()


class StreamBatchSpans:
    """The spans of one delivered micro-batch (see the module docstring)."""

    def __init__(
        self, spans: OtelSpans, batch: Sequence[InMessage],
        contexts: Sequence[TraceContext | None], outcome: BatchOutcome,
    ) -> None:  # fmt: skip
        self._spans = spans
        self._batch = batch
        self._jobs: list[OtelSpan] = []
        now = time.perf_counter()
        self._start = min(outcome.stage_started.values(), default=now)
        self._produce_start = self._produce_end = now
        sampled = sum(1 for c in contexts if c is not None and c.sampled)
        self.span: OtelSpan | None = None
        if sampled or spans.sampled_root():
            self.span = self._open(batch, contexts, outcome, sampled)

    def _open(
        self, batch: Sequence[InMessage], contexts: Sequence[TraceContext | None],
        outcome: BatchOutcome, sampled: int,
    ) -> OtelSpan:  # fmt: skip
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": batch[0].topic if batch else "",
            "messaging.batch.message_count": len(batch),
            "scorer.worker": self._spans.worker_index,
            "scorer.outputs": len(outcome.outputs),
            "scorer.rejected": len(outcome.rejected),
            "scorer.predictions": sum(outcome.predictions.values()),
            "scorer.sampled_jobs": sampled,
        }
        every = self._spans.link_unsampled
        links = [Link(_remote(c)) for c in contexts if c is not None and (every or c.sampled)]
        span = self._spans.tracer.start_span(
            "scorer.batch", _ROOT, SpanKind.CONSUMER, attributes, links,
            start_time=self._spans.ns(self._start),
        )  # fmt: skip
        parent = trace.set_span_in_context(span)
        for stage in STAGES:
            started = outcome.stage_started.get(stage)
            if started is not None:
                ended = started + outcome.stage_seconds.get(stage, 0.0)
                self._child(stage, parent, started, ended)
        return span

    def _child(self, name: str, parent: Context, started: float, ended: float) -> None:
        child = self._spans.tracer.start_span(name, parent, start_time=self._spans.ns(started))
        child.end(end_time=self._spans.ns(ended))

    def job(
        self, position: int, parent: TraceContext | None, result: Output | Rejected
    ) -> TraceContext | None:
        if parent is None:
            if not self._spans.sampled_root():
                return None
            context = _ROOT
        elif parent.sampled:
            context = trace.set_span_in_context(NonRecordingSpan(_remote(parent)))
        else:
            return None
        msg = self._batch[position]
        links = [] if self.span is None else [Link(self.span.get_span_context())]
        span = self._spans.tracer.start_span(
            "scorer.job", context, SpanKind.CONSUMER, _job_attributes(msg, result), links,
            start_time=self._spans.ns(self._start),
        )  # fmt: skip
        if isinstance(result, Rejected):
            span.set_status(Status(StatusCode.ERROR, result.kind))
        self._jobs.append(span)
        return _own(span, parent)

    def delivered(self) -> None:
        self._produce_end = time.perf_counter()
        end = self._spans.ns(self._produce_end)
        for span in self._jobs:
            span.end(end_time=end)
        self._jobs.clear()

    def committed(self) -> None:
        if self.span is None:
            return
        now = time.perf_counter()
        parent = trace.set_span_in_context(self.span)
        self._child("produce", parent, self._produce_start, self._produce_end)
        self._child("commit", parent, self._produce_end, now)
        self.span.end(end_time=self._spans.ns(now))
        self.span = None


def _job_attributes(msg: InMessage, result: Output | Rejected) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "messaging.destination.name": msg.topic,
        "messaging.destination.partition.id": str(msg.partition),
        "messaging.kafka.offset": msg.offset,
    }
    if isinstance(result, Rejected):
        attributes["scorer.rejected"] = result.kind
        attributes["scorer.reason"] = result.reason
        return attributes
    for name, value in result.headers:
        if name in ("request_id", "model", "model_version"):
            attributes[f"scorer.{name}"] = value.decode(errors="replace")
    return attributes


class RequestSpans:
    """One ranking API request's span (kind SERVER)."""

    def __init__(self, spans: OtelSpans, parent: TraceContext | None, path: str) -> None:
        self._parent = parent
        self._span: OtelSpan | None = None
        if parent is None:
            if not spans.sampled_root():
                return
            context = _ROOT
        elif parent.sampled:
            context = trace.set_span_in_context(NonRecordingSpan(_remote(parent)))
        else:
            return
        attributes: dict[str, AttributeValue] = {"http.request.method": "POST", "url.path": path}
        self._span = spans.tracer.start_span(f"POST {path}", context, SpanKind.SERVER, attributes)

    @property
    def context(self) -> TraceContext | None:
        return None if self._span is None else _own(self._span, self._parent)

    def end(self, status: int, attributes: dict[str, str | float]) -> None:
        if self._span is None:
            return
        self._span.set_attributes({**attributes, "http.response.status_code": status})
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR, str(status)))
        self._span.end()
