"""Trace context through the loop (in-memory fakes): job headers in, ranked list and dead-letter
headers out, malformed values counted and ignored."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import BatchConfig, Config, DeliveryConfig, KafkaConfig, TracingConfig
from consumer.metrics import Metrics
from consumer.stream.loop import ScoringLoop
from consumer.stream.records import RebalanceHook, Source, TopicPartition
from consumer.stream.tracing import StreamTracing
from consumer.telemetry.tracecontext import parse_traceparent
from tests.consumer.fakes import FakePending, FakeProcessor, FakeSink, FakeSource

P0: TopicPartition = ("jobs", 0)
TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = b"00f067aa0ba902b7"
TRACEPARENT = b"00-" + TRACE + b"-" + PARENT + b"-01"

Headers = tuple[tuple[str, bytes | None], ...]


def run_loop(
    jobs: list[tuple[bytes, Headers]], tracing: TracingConfig | None = None, dlq: str = "dlq"
) -> tuple[FakeSink, Metrics]:
    config = Config(
        kafka=KafkaConfig(output_topic="ranked"),
        batch=BatchConfig(max_jobs=16, max_wait_ms=0, commit_interval_ms=0),
        delivery=DeliveryConfig(dead_letter_topic=dlq),
        tracing=tracing or TracingConfig(),
    )

    def make_source(on_assign: RebalanceHook, on_revoke: RebalanceHook) -> Source:
        source = FakeSource({P0: [value for value, _ in jobs]}, on_assign, on_revoke)
        source.broker.logs[P0] = [
            replace(m, headers=h) for m, (_, h) in zip(source.broker.logs[P0], jobs, strict=True)
        ]
        return source

    metrics = Metrics(CollectorRegistry())
    sink = FakeSink()
    loop: ScoringLoop[FakePending] = ScoringLoop(
        config, make_source, sink, FakeProcessor(), metrics, ManualClock(),
        tracing=StreamTracing(config.tracing, metrics),
    )  # fmt: skip
    loop.step()
    loop.step()
    return sink, metrics


def dropped(metrics: Metrics, header: str) -> float:
    labels = {"source": "kafka", "header": header}
    return (
        metrics.registry.get_sample_value("stream_scorer_trace_context_dropped_total", labels) or 0
    )


def test_a_ranked_list_continues_its_jobs_trace_with_the_scorers_span_as_parent() -> None:
    sink, _ = run_loop([(b"a", (("traceparent", TRACEPARENT), ("tracestate", b"v=1")))])
    headers = sink.headers[0]
    ids = parse_traceparent(headers["traceparent"])
    assert ids is not None
    trace_id, parent_id, flags = ids
    assert (trace_id, flags) == (TRACE, b"01")
    assert parent_id != PARENT  # the scorer's own span, not the producer's
    assert headers["tracestate"] == b"v=1"


def test_every_job_gets_a_span_id_of_its_own() -> None:
    sink, _ = run_loop([(v, (("traceparent", TRACEPARENT),)) for v in (b"a", b"b", b"c")])
    parents = {parse_traceparent(h["traceparent"]) for h in sink.headers}
    assert len(parents) == 3


def test_a_dead_letter_record_continues_the_trace_too() -> None:
    sink, _ = run_loop([(b"bad", (("traceparent", TRACEPARENT),))])
    (topic, _, _, _), headers = sink.produced[0], sink.headers[0]
    assert topic == "dlq"
    assert headers["error.class"] == b"decode"
    ids = parse_traceparent(headers["traceparent"])
    assert ids is not None
    assert ids[0] == TRACE
    assert ids[1] != PARENT


def test_jobs_without_trace_context_get_none_by_default() -> None:
    sink, _ = run_loop([(b"a", ()), (b"b", (("other", b"x"),))])
    assert all("traceparent" not in h for h in sink.headers)


def test_jobs_without_trace_context_get_a_new_root_when_configured() -> None:
    sink, _ = run_loop([(b"a", ()), (b"b", ())], TracingConfig(missing="new_root"))
    roots = [parse_traceparent(h["traceparent"]) for h in sink.headers]
    assert all(r is not None and r[2] == b"00" for r in roots)
    assert len({r[0] for r in roots if r is not None}) == 2  # one new trace per job


def test_malformed_trace_context_is_ignored_counted_and_never_fatal() -> None:
    jobs: list[tuple[bytes, Headers]] = [
        (b"a", (("traceparent", b"00-not-a-trace"),)),
        (b"b", (("traceparent", TRACEPARENT), ("tracestate", b"=bad"))),
        (b"c", (("traceparent", None),)),
    ]
    sink, metrics = run_loop(jobs)
    assert [p[2] for p in sink.produced] == [b"ranked:a", b"ranked:b", b"ranked:c"]
    assert "traceparent" not in sink.headers[0]
    assert sink.headers[1]["traceparent"].startswith(b"00-" + TRACE)
    assert "tracestate" not in sink.headers[1]
    assert dropped(metrics, "traceparent") == 2
    assert dropped(metrics, "tracestate") == 1


def test_propagation_off_writes_no_trace_headers() -> None:
    sink, _ = run_loop([(b"a", (("traceparent", TRACEPARENT),))], TracingConfig(propagate=False))
    assert "traceparent" not in sink.headers[0]
    assert sink.headers[0] == {}
