"""OpenTelemetry spans: structure with the SDK's in-memory exporter, and the real OTLP/HTTP
protobuf payload decoded by a local receiver."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import BatchConfig, Config, DeliveryConfig, KafkaConfig, TracingConfig
from consumer.errors import ConfigError
from consumer.metrics import Metrics
from consumer.stream.loop import ScoringLoop
from consumer.stream.outcome import BatchOutcome
from consumer.stream.records import RebalanceHook, Source, TopicPartition
from consumer.stream.tracing import StreamTracing
from consumer.telemetry.otel import OtelSpans
from consumer.telemetry.tracecontext import parse_traceparent
from consumer.telemetry.tracing import build_spans
from tests.consumer.fakes import FakePending, FakeProcessor, FakeSink, FakeSource
from tests.consumer.telemetry.otlp_receiver import otlp_receiver

P0: TopicPartition = ("jobs", 0)
TRACES = [b"%032x" % (i + 1) for i in range(4)]
PARENT = b"00f067aa0ba902b7"
STAGES = ("decode", "features", "score", "encode")


class TimedProcessor(FakeProcessor):
    """The fake processor, with the stage timings the real one records."""

    def process(self, payloads: Sequence[bytes | None]) -> BatchOutcome:
        outcome = super().process(payloads)
        for i, stage in enumerate(STAGES):
            outcome.stage_started[stage] = 100.0 + i * 0.001
            outcome.stage_seconds[stage] = 0.0005
        return outcome


def run(spans: OtelSpans, tracing: TracingConfig, jobs: list[tuple[bytes, bytes]]) -> FakeSink:
    """Score `jobs` (payload, flags; b'' = no traceparent) through the loop with spans on."""
    config = Config(
        kafka=KafkaConfig(output_topic="ranked"),
        batch=BatchConfig(max_jobs=16, max_wait_ms=0, commit_interval_ms=0),
        delivery=DeliveryConfig(dead_letter_topic="dlq"),
        tracing=tracing,
    )

    def make_source(on_assign: RebalanceHook, on_revoke: RebalanceHook) -> Source:
        source = FakeSource({P0: [value for value, _ in jobs]}, on_assign, on_revoke)
        queue = source.broker.logs[P0]
        for i, (_, flags) in enumerate(jobs):
            if flags:
                parent = b"00-" + TRACES[i] + b"-" + PARENT + b"-" + flags
                queue[i] = replace(queue[i], headers=(("traceparent", parent),))
        return source

    metrics = Metrics(CollectorRegistry())
    sink = FakeSink()
    loop: ScoringLoop[FakePending] = ScoringLoop(
        config, make_source, sink, TimedProcessor(), metrics, ManualClock(),
        tracing=StreamTracing(config.tracing, metrics, spans),
    )  # fmt: skip
    loop.step()
    loop.step()
    return sink


def in_memory(ratio: float = 0.0) -> tuple[OtelSpans, InMemorySpanExporter, TracingConfig]:
    exporter = InMemorySpanExporter()
    config = TracingConfig(spans=True, endpoint="unused", sample_ratio=ratio)
    return OtelSpans.with_processor(SimpleSpanProcessor(exporter), config, 2), exporter, config


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_batch_span_with_stage_children_and_a_link_per_job() -> None:
    spans, exporter, config = in_memory()
    sink = run(spans, config, [(b"a", b"01"), (b"b", b"00"), (b"bad", b"01"), (b"c", b"")])
    finished = exporter.get_finished_spans()
    (batch,) = by_name(finished, "scorer.batch")
    assert batch.kind is SpanKind.CONSUMER
    assert batch.parent is None  # a root: the batch serves many traces
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 4
    assert batch.attributes["scorer.worker"] == 2
    assert batch.attributes["scorer.sampled_jobs"] == 2
    # Links to the sampled contexts (a and bad): the unsampled trace is recorded nowhere.
    assert {b"%032x" % link.context.trace_id for link in batch.links} == {TRACES[0], TRACES[2]}
    children = [s for s in finished if s.parent is not None
                and s.parent.span_id == batch.context.span_id]  # fmt: skip
    assert sorted(s.name for s in children) == sorted([*STAGES, "produce", "commit"])
    for child in children:
        assert batch.start_time is not None
        assert child.start_time is not None
        assert batch.end_time is not None
        assert child.end_time is not None
        assert batch.start_time <= child.start_time <= child.end_time <= batch.end_time
    decode = by_name(children, "decode")[0]
    assert decode.end_time is not None
    assert decode.start_time is not None
    assert decode.end_time - decode.start_time == pytest.approx(500_000, abs=2)
    # Only sampled jobs get a span: job a (ranked) and job bad (dead-lettered).
    jobs = by_name(finished, "scorer.job")
    assert len(jobs) == 2
    headers = {h["traceparent"][3:35]: h["traceparent"] for h in sink.headers if h}
    assert len(headers) == 3  # job c came without a traceparent and leaves without one
    for job in jobs:
        trace_id = b"%032x" % job.context.trace_id
        assert job.parent is not None
        assert job.parent.span_id == int(PARENT, 16)
        assert job.parent.is_remote
        assert [link.context.span_id for link in job.links] == [batch.context.span_id]
        ids = parse_traceparent(headers[trace_id])
        assert ids == (trace_id, b"%016x" % job.context.span_id, b"01")  # the scorer's span
    ranked = next(j for j in jobs if b"%032x" % j.context.trace_id == TRACES[0])
    assert ranked.attributes is not None
    assert ranked.attributes["messaging.kafka.offset"] == 0
    rejected = next(j for j in jobs if b"%032x" % j.context.trace_id == TRACES[2])
    assert rejected.attributes is not None
    assert rejected.attributes["scorer.rejected"] == "decode"
    # The unsampled job still continues its trace, with a span id nothing records.
    unsampled = parse_traceparent(headers[TRACES[1]])
    assert unsampled is not None
    assert unsampled[2] == b"00"
    assert unsampled[1] not in {b"%016x" % s.context.span_id for s in finished}


def test_link_unsampled_links_every_jobs_context() -> None:
    spans, exporter, config = in_memory()
    spans.link_unsampled = True
    run(spans, config, [(b"a", b"01"), (b"b", b"00"), (b"c", b"")])
    (batch,) = by_name(exporter.get_finished_spans(), "scorer.batch")
    assert {b"%032x" % link.context.trace_id for link in batch.links} == set(TRACES[:2])


def test_batches_without_sampled_jobs_follow_the_sample_ratio() -> None:
    spans, exporter, config = in_memory(ratio=0.0)
    run(spans, config, [(b"a", b"00"), (b"b", b"")])
    assert exporter.get_finished_spans() == ()
    spans, exporter, config = in_memory(ratio=1.0)
    run(spans, config, [(b"a", b"00"), (b"b", b"")])
    assert len(by_name(exporter.get_finished_spans(), "scorer.batch")) == 1
    assert by_name(exporter.get_finished_spans(), "scorer.job") == []


def test_new_roots_are_recorded_at_the_sample_ratio() -> None:
    spans, exporter, config = in_memory(ratio=1.0)
    sink = run(spans, replace(config, missing="new_root"), [(b"a", b""), (b"b", b"")])
    jobs = by_name(exporter.get_finished_spans(), "scorer.job")
    assert len(jobs) == 2
    assert all(j.parent is None for j in jobs)
    written = {parse_traceparent(h["traceparent"]) for h in sink.headers}
    assert written == {(b"%032x" % j.context.trace_id, b"%016x" % j.context.span_id, b"01")
                       for j in jobs}  # fmt: skip


def test_spans_off_imports_no_opentelemetry() -> None:
    code = ("import sys\nfrom consumer.config import TracingConfig\n"
            "from consumer.service import Service\n"
            "from consumer.telemetry.tracing import build_spans\n"
            "assert build_spans(TracingConfig()) is None\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"


def test_spans_need_an_endpoint() -> None:
    from consumer.config import load_config

    with pytest.raises(ConfigError, match=r"tracing\.endpoint"):
        load_config({"STREAM_SCORER__TRACING__SPANS": "true"})


def test_the_otlp_exporter_sends_protobuf_a_real_receiver_decodes() -> None:
    with otlp_receiver() as receiver:
        config = TracingConfig(spans=True, endpoint=receiver.endpoint, sample_ratio=0.0,
                               service_name="scorer-under-test")  # fmt: skip
        spans = build_spans(config, worker_index=1)
        assert isinstance(spans, OtelSpans)
        sink = run(spans, config, [(b"a", b"01"), (b"b", b"01")])
        spans.shutdown()  # flushes the batch processor
        (batch,) = receiver.wait_for("scorer.batch", 1)
        jobs = receiver.wait_for("scorer.job", 2)
        assert receiver.content_types == {"application/x-protobuf"}
    assert batch.resource["service.name"] == "scorer-under-test"
    assert batch.resource["scorer.worker"] == 1
    assert {link.trace_id.hex().encode() for link in batch.span.links} == set(TRACES[:2])
    assert batch.span.kind == batch.span.SPAN_KIND_CONSUMER
    written = {h["traceparent"] for h in sink.headers}
    assert written == {b"00-" + j.span.trace_id.hex().encode() + b"-"
                       + j.span.span_id.hex().encode() + b"-01" for j in jobs}  # fmt: skip
    for job in jobs:
        assert job.span.parent_span_id.hex().encode() == PARENT
        assert job.attributes["messaging.destination.name"] == "jobs"
        assert job.span.kind == job.span.SPAN_KIND_CONSUMER
