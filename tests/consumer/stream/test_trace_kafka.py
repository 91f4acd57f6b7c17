"""Trace context on the real broker: ids round-trip exactly from job to ranked list and to
dead-letter record; malformed values are counted and never stop the stream."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.local_kafka import create_topics
from consumer.devtools.ranked_reader import headers_of
from consumer.telemetry.tracecontext import parse_traceparent
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder
from tests.consumer.kafka_support import (
    Topics,
    make_jobs,
    new_service,
    read_all,
    read_ranked,
    running,
    sample,
    scorer_config,
    wait_until,
)
from tests.consumer.telemetry.otlp_receiver import otlp_receiver

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("data")
    return write_demo_data(root, n_items=2_000, n_users=200, seed=5, hash_bits=14)


def test_trace_ids_round_trip_exactly_through_the_broker(
    kafka_bootstrap: str, data: DemoData, unique_name: Callable[[str], str]
) -> None:
    topics = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    dlq = unique_name("dlq")
    create_topics(kafka_bootstrap, [topics.jobs, topics.ranked, dlq], 2)
    jobs = make_jobs(data, 40)
    traces = {j.request_id: os.urandom(16).hex().encode() for j in jobs[:30]}
    parent = b"00f067aa0ba902b7"
    encoder = JobEncoder(StaticRegistry())
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, job in enumerate(jobs):
        headers: list[tuple[str, str | bytes | None]] = []
        if job.request_id in traces:
            flags = b"01" if i % 2 else b"00"
            headers = [("traceparent", b"00-" + traces[job.request_id] + b"-" + parent + b"-"
                        + flags), ("tracestate", b"vendor=%d" % i)]  # fmt: skip
        elif i % 2:
            headers = [("traceparent", b"00-malformed")]
        producer.produce(topics.jobs, encoder.encode(job), str(job.user_id).encode(),
                         headers=headers)  # fmt: skip
    poison_trace = os.urandom(16).hex().encode()
    poison: list[tuple[str, str | bytes | None]] = [
        ("traceparent", b"00-" + poison_trace + b"-" + parent + b"-01")
    ]
    producer.produce(topics.jobs, b"not avro", b"p", headers=poison)
    assert producer.flush(30) == 0

    config = scorer_config(data, kafka_bootstrap, topics)
    config = replace(config, delivery=replace(config.delivery, dead_letter_topic=dlq))
    service, registry = new_service(config)
    with running(service):
        wait_until(lambda: sample(registry, "stream_scorer_ranked_lists_produced_total") >= 41)

    ranked = read_ranked(kafka_bootstrap, topics.ranked, 40)
    assert len(ranked) == 40
    for _key, out, ranked_list in ranked:
        expected = traces.get(ranked_list.request_id)
        if expected is None:
            assert "traceparent" not in out  # none in (or malformed): none out
            continue
        ids = parse_traceparent(out["traceparent"])
        assert ids is not None
        assert ids[0] == expected
        assert ids[1] != parent
        index = next(i for i, j in enumerate(jobs) if j.request_id == ranked_list.request_id)
        assert ids[2] == (b"01" if index % 2 else b"00")
        assert out["tracestate"] == b"vendor=%d" % index
    assert sample(
        registry, "stream_scorer_trace_context_dropped_total",
        {"source": "kafka", "header": "traceparent"},
    ) == 5  # fmt: skip

    (dead,) = read_all(kafka_bootstrap, dlq, idle_s=1.0, timeout_s=30)
    dead_headers = headers_of(dead)
    assert dead_headers["error.class"] == b"decode"
    ids = parse_traceparent(dead_headers["traceparent"])
    assert ids is not None
    assert ids[0] == poison_trace
    assert ids[1] != parent


def test_spans_of_a_traced_job_on_the_real_broker_reach_an_otlp_receiver(
    kafka_bootstrap: str, data: DemoData, unique_name: Callable[[str], str]
) -> None:
    topics = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    create_topics(kafka_bootstrap, [topics.jobs, topics.ranked], 1)
    jobs = make_jobs(data, 12)
    parent = b"00f067aa0ba902b7"
    traces = {j.request_id: os.urandom(16).hex().encode() for j in jobs}
    encoder = JobEncoder(StaticRegistry())
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for job in jobs:
        header = b"00-" + traces[job.request_id] + b"-" + parent + b"-01"
        producer.produce(topics.jobs, encoder.encode(job), headers=[("traceparent", header)])
    assert producer.flush(30) == 0
    with otlp_receiver() as receiver:
        config = scorer_config(data, kafka_bootstrap, topics)
        config = replace(config, tracing=replace(config.tracing, spans=True,
                                                 endpoint=receiver.endpoint))  # fmt: skip
        service, registry = new_service(config)
        with running(service):
            wait_until(lambda: sample(registry, "stream_scorer_ranked_lists_produced_total") >= 12)
        # Service.close shut the tracer down: everything was exported.
        job_spans = receiver.wait_for("scorer.job", 12)
        batches = receiver.named("scorer.batch")
        stages = {(r.span.parent_span_id, r.span.name) for r in receiver.spans}
    ranked = read_ranked(kafka_bootstrap, topics.ranked, 12)
    by_trace = {j.span.trace_id.hex().encode(): j for j in job_spans}
    for _key, out, ranked_list in ranked:
        span = by_trace[traces[ranked_list.request_id]]
        assert out["traceparent"] == b"00-%s-%s-01" % (
            span.span.trace_id.hex().encode(), span.span.span_id.hex().encode())  # fmt: skip
        assert span.span.parent_span_id.hex().encode() == parent
        assert span.attributes["scorer.request_id"] == ranked_list.request_id
        assert span.attributes["scorer.model"] == "demo-lr"
    assert batches
    for batch in batches:
        children = {name for p, name in stages if p == batch.span.span_id}
        assert children == {"decode", "features", "score", "encode", "produce", "commit"}
        assert batch.span.links
