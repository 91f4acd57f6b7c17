"""One behavioural suite for the loop's edges, run against the in-memory fakes and the real broker.

`ScoringLoop`'s unit tests trust `FakeSource`/`FakeSink`/`FakeTransactionalSink`; this suite holds
them and `KafkaSource`/`KafkaSink` (Apache Kafka, started by the session fixture) to the same
cases, so the fakes cannot drift from what the loop meets in production. Each backend provides an
`Env`: one input topic (two partitions), one output topic, and factories for sources and sinks.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol

import pytest
from confluent_kafka import Consumer, Producer

from consumer.devtools.local_kafka import create_topics
from consumer.devtools.ranked_reader import headers_of
from consumer.stream.kafka import KafkaSink, KafkaSource
from consumer.stream.records import (
    InMessage,
    Sink,
    Source,
    TopicPartition,
    TransactionalSink,
)
from tests.consumer.fakes import FakeBroker, FakeSink, FakeSource, FakeTransactionalSink

Landed = list[tuple[bytes | None, bytes | None, dict[str, bytes]]]


class Env(Protocol):
    input: str
    output: str
    assignments: list[list[TopicPartition]]

    def write(self, partition: int, values: list[bytes]) -> None: ...

    def source(self, group: str) -> Source: ...

    def sink(self) -> Sink: ...

    def transactional_sink(self) -> TransactionalSink: ...

    def landed(self, committed_only: bool, expected: int) -> Landed: ...


def poll_until(source: Source, n: int, timeout_s: float = 30.0) -> list[InMessage]:
    """Poll until ``n`` records arrived, then once more briefly (anything extra shows up)."""
    out: list[InMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out.extend(source.poll_batch(100, 0.2))
    out.extend(source.poll_batch(100, 0.5))
    return out


def by_partition(messages: list[InMessage]) -> dict[int, list[tuple[int, bytes | None]]]:
    out: dict[int, list[tuple[int, bytes | None]]] = {}
    for m in messages:
        out.setdefault(m.partition, []).append((m.offset, m.value))
    return out


class SourceSinkContract:
    """The cases; subclasses provide ``env``."""

    def test_records_come_in_offset_order_with_their_coordinates(self, env: Env) -> None:
        env.write(0, [b"a", b"b", b"c"])
        env.write(1, [b"x"])
        got = poll_until(env.source("g1"), 4)
        assert by_partition(got) == {0: [(0, b"a"), (1, b"b"), (2, b"c")], 1: [(0, b"x")]}
        assert {m.topic for m in got} == {env.input}
        assert sorted(tp for call in env.assignments for tp in call) == [
            (env.input, 0), (env.input, 1)
        ]  # fmt: skip

    def test_seek_sets_the_next_offset_to_read(self, env: Env) -> None:
        env.write(0, [b"a", b"b", b"c"])
        source = env.source("g2")
        assert len(poll_until(source, 3)) == 3
        source.seek({(env.input, 0): 1})
        assert by_partition(poll_until(source, 2)) == {0: [(1, b"b"), (2, b"c")]}

    def test_paused_partitions_yield_nothing_until_resumed(self, env: Env) -> None:
        env.write(0, [b"a"])
        env.write(1, [b"x"])
        source = env.source("g3")
        assert len(poll_until(source, 2)) == 2
        source.seek({(env.input, 0): 0, (env.input, 1): 0})
        source.pause([(env.input, 1)])
        assert by_partition(poll_until(source, 1)) == {0: [(0, b"a")]}
        source.resume([(env.input, 1)])
        assert by_partition(poll_until(source, 1)) == {1: [(0, b"x")]}

    def test_a_new_source_of_the_group_starts_at_the_committed_offsets(self, env: Env) -> None:
        env.write(0, [b"a", b"b", b"c"])
        env.write(1, [b"x"])
        first = env.source("g4")
        assert len(poll_until(first, 4)) == 4
        first.commit({(env.input, 0): 2, (env.input, 1): 1}, asynchronous=False)
        first.close()
        assert by_partition(poll_until(env.source("g4"), 1)) == {0: [(2, b"c")]}

    def test_lag_is_zero_once_everything_is_read(self, env: Env) -> None:
        env.write(0, [b"a", b"b"])
        env.write(1, [b"x"])
        source = env.source("g5")
        assert len(poll_until(source, 3)) == 3
        tps = [(env.input, 0), (env.input, 1)]
        assert source.lag(tps) == dict.fromkeys(tps, 0)

    def test_every_produced_record_gets_one_delivery_with_its_token(self, env: Env) -> None:
        sink = env.sink()
        tokens = [((env.input, 0), offset) for offset in range(3)]
        for i, token in enumerate(tokens):
            sink.produce(env.output, b"k%d" % i, b"v%d" % i, [("h", b"%d" % i)], token)
        assert sink.flush(30) == 0
        deliveries = sink.take_deliveries()
        assert sorted(d.token for d in deliveries) == tokens
        assert [d.error for d in deliveries] == [None] * 3
        assert sink.take_deliveries() == []
        landed = sorted(env.landed(committed_only=False, expected=3))
        assert landed == [(b"k%d" % i, b"v%d" % i, {"h": b"%d" % i}) for i in range(3)]

    def test_a_transaction_publishes_outputs_and_offsets_together(self, env: Env) -> None:
        env.write(0, [b"a", b"b"])
        source = env.source("g6")
        assert len(poll_until(source, 2)) == 2
        sink = env.transactional_sink()
        sink.begin()
        sink.produce(env.output, b"k", b"kept", [], ((env.input, 0), 0))
        sink.send_offsets({(env.input, 0): 2}, source.group_metadata())
        sink.commit_transaction()
        sink.begin()
        sink.produce(env.output, b"k", b"aborted", [], ((env.input, 0), 1))
        sink.abort_transaction()
        assert [v for _, v, _ in env.landed(committed_only=True, expected=1)] == [b"kept"]
        source.close()
        assert poll_until(env.source("g6"), 1, timeout_s=5.0) == []  # offset 2 committed


class FakeEnv:
    def __init__(self) -> None:
        self.broker = FakeBroker()
        self.input, self.output = "jobs", "ranked"
        self.assignments: list[list[TopicPartition]] = []
        self._sinks: list[FakeSink] = []
        for partition in (0, 1):
            self.broker.logs[(self.input, partition)] = []

    def write(self, partition: int, values: list[bytes]) -> None:
        for v in values:
            self.broker.append((self.input, partition), v)

    def source(self, group: str) -> Source:
        return FakeSource({}, self.assignments.append, lambda _tps: None, self.broker, group)

    def sink(self) -> Sink:
        self._sinks.append(FakeSink())
        return self._sinks[-1]

    def transactional_sink(self) -> TransactionalSink:
        sink = FakeTransactionalSink()
        self._sinks.append(sink)
        return sink

    def landed(self, committed_only: bool, expected: int) -> Landed:
        out: Landed = []
        for sink in self._sinks:
            if isinstance(sink, FakeTransactionalSink) and committed_only:
                out.extend((key, value, {}) for _, key, value, _ in sink.committed)
            else:
                produced = zip(sink.produced, sink.headers, strict=True)
                out.extend((key, value, h) for (_, key, value, _), h in produced)
        return out


class KafkaEnv:
    def __init__(self, bootstrap: str, unique_name: Callable[[str], str]) -> None:
        self.bootstrap = bootstrap
        self.input, self.output = unique_name("contract-in"), unique_name("contract-out")
        self.assignments: list[list[TopicPartition]] = []
        self._groups: dict[str, str] = {}
        self._closing: list[Callable[[], object]] = []
        create_topics(bootstrap, [self.input, self.output], partitions=2)

    def write(self, partition: int, values: list[bytes]) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap})
        for v in values:
            producer.produce(self.input, value=v, partition=partition)
        assert producer.flush(30) == 0

    def source(self, group: str) -> Source:
        name = self._groups.setdefault(group, f"{group}-{uuid.uuid4().hex[:8]}")
        props = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}
        source = KafkaSource(self.bootstrap, name, self.input, props, self.assignments.append,
                             lambda _tps: None)  # fmt: skip
        self._closing.append(source.close)
        return source

    def sink(self) -> Sink:
        return KafkaSink(self.bootstrap, {})

    def transactional_sink(self) -> TransactionalSink:
        sink = KafkaSink(self.bootstrap, {"transactional.id": f"contract-{uuid.uuid4().hex}"})
        sink.init_transactions()
        return sink

    def landed(self, committed_only: bool, expected: int) -> Landed:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        })  # fmt: skip
        consumer.subscribe([self.output])
        out: Landed = []
        deadline = time.monotonic() + 30
        try:
            while len(out) < expected and time.monotonic() < deadline:
                for m in consumer.consume(100, 0.5):
                    if m.error() is None:
                        out.append((m.key(), m.value(), headers_of(m)))
            out.extend((m.key(), m.value(), headers_of(m)) for m in consumer.consume(100, 1.0))
        finally:
            consumer.close()
        return out

    def close(self) -> None:
        for close in self._closing:
            with contextlib.suppress(RuntimeError):  # already closed by the test
                close()


class TestFakeBackend(SourceSinkContract):
    @pytest.fixture
    def env(self) -> FakeEnv:
        return FakeEnv()


@pytest.mark.kafka
class TestKafkaBackend(SourceSinkContract):
    @pytest.fixture
    def env(self, kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Iterator[KafkaEnv]:
        env = KafkaEnv(kafka_bootstrap, unique_name)
        yield env
        env.close()
