"""The local broker tooling: jar cache, config, and real produce/consume/commit/restart cycles."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from consumer.devtools import kafka_jars, local_kafka
from consumer.devtools.local_kafka import (
    LocalKafka,
    LocalKafkaError,
    broker_properties,
    create_topics,
    default_cache_dir,
    ensure_jars,
    kafka_cluster,
)

Record = tuple[bytes, bytes]


def _records(count: int, start: int = 0) -> list[Record]:
    return [(f"k{i}".encode(), f"value-{i}".encode()) for i in range(start, start + count)]


def _produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
    assert producer.flush(30.0) == 0
    assert failures == []


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )


def _consume(consumer: Consumer, count: int, timeout_s: float = 30.0) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is None:
            continue
        assert message.error() is None, message.error()
        messages.append(message)
    return messages


def _pairs(messages: list[Message]) -> list[Record]:
    return [(m.key() or b"", m.value() or b"") for m in messages]


@pytest.fixture
def topic(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> str:
    name = unique_name("local-kafka")
    create_topics(kafka_bootstrap, [name])
    return name


@pytest.mark.kafka
def test_produced_records_come_back_exactly_in_order(
    kafka_bootstrap: str, topic: str, unique_name: Callable[[str], str]
) -> None:
    sent = _records(100)
    _produce(kafka_bootstrap, topic, sent)
    consumer = _consumer(kafka_bootstrap, unique_name("group"))
    try:
        consumer.subscribe([topic])
        received = _consume(consumer, len(sent))
    finally:
        consumer.close()
    assert _pairs(received) == sent
    assert [m.offset() for m in received] == list(range(100))


@pytest.mark.kafka
def test_committed_offset_is_where_the_group_resumes(
    kafka_bootstrap: str, topic: str, unique_name: Callable[[str], str]
) -> None:
    _produce(kafka_bootstrap, topic, _records(20))
    group = unique_name("group")
    first = _consumer(kafka_bootstrap, group)
    try:
        first.subscribe([topic])
        head = _consume(first, 10)[:10]
        first.commit(message=head[-1], asynchronous=False)
        committed = first.committed([TopicPartition(topic, 0)], timeout=10.0)
    finally:
        first.close()
    assert [tp.offset for tp in committed] == [10]  # the next offset to read
    second = _consumer(kafka_bootstrap, group)
    try:
        second.subscribe([topic])
        rest = _consume(second, 10)
    finally:
        second.close()
    assert _pairs(rest) == _records(10, start=10)


@pytest.mark.kafka
def test_create_topics_makes_partitions_and_accepts_existing(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("partitioned")
    create_topics(kafka_bootstrap, [name], partitions=3)
    create_topics(kafka_bootstrap, [name], partitions=3)
    consumer = _consumer(kafka_bootstrap, unique_name("group"))
    try:
        partitions = consumer.list_topics(name, timeout=10.0).topics[name].partitions
    finally:
        consumer.close()
    assert sorted(partitions) == [0, 1, 2]


@pytest.mark.kafka
@pytest.mark.slow
def test_restart_keeps_data_and_address(
    local_kafka: LocalKafka, unique_name: Callable[[str], str]
) -> None:
    topic, bootstrap = unique_name("restart"), local_kafka.bootstrap
    local_kafka.create_topics([topic])
    _produce(bootstrap, topic, _records(5))
    local_kafka.restart()
    assert local_kafka.bootstrap == bootstrap
    _produce(bootstrap, topic, _records(5, start=5))
    _assert_topic_holds(bootstrap, topic, _records(10), unique_name("group"))


@pytest.mark.kafka
@pytest.mark.slow
def test_killed_broker_comes_back_with_its_data(
    local_kafka: LocalKafka, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("kill")
    local_kafka.create_topics([topic])
    _produce(local_kafka.bootstrap, topic, _records(5))
    local_kafka.kill()
    assert not local_kafka.is_running
    local_kafka.restart()
    assert local_kafka.is_running
    _assert_topic_holds(local_kafka.bootstrap, topic, _records(5), unique_name("group"))


def _assert_topic_holds(bootstrap: str, topic: str, expected: list[Record], group: str) -> None:
    consumer = _consumer(bootstrap, group)
    try:
        consumer.subscribe([topic])
        received = _consume(consumer, len(expected))
        extra = _consume(consumer, 1, timeout_s=2.0)
    finally:
        consumer.close()
    assert _pairs(received) == expected
    assert extra == []


@pytest.mark.kafka
def test_broker_that_cannot_start_reports_its_output(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _fake_fetched_cache(cache)  # an empty lib dir: the JVM finds no Kafka classes
    with pytest.raises(LocalKafkaError) as raised:
        LocalKafka(cache, data_dir=tmp_path / "data").start()
    assert "kafka.tools.StorageTool" in raised.value.detail


@pytest.fixture
def no_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> LocalKafka:
        raise AssertionError("a local broker was started")

    monkeypatch.setattr(local_kafka, "LocalKafka", refuse)


@pytest.mark.usefixtures("no_local_broker")
def test_kafka_cluster_with_bootstrap_starts_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with kafka_cluster(cache, "broker.example:9092") as bootstrap:
        assert bootstrap == "broker.example:9092"
    assert not cache.exists()


@pytest.mark.usefixtures("no_local_broker")
def test_kafka_cluster_without_bootstrap_starts_a_broker(tmp_path: Path) -> None:
    with (
        pytest.raises(AssertionError, match="local broker was started"),
        kafka_cluster(tmp_path, None),
    ):
        pass


def _fake_fetched_cache(cache: Path) -> Path:
    root = cache / f"kafka-{local_kafka.KAFKA_VERSION}"
    (root / "lib").mkdir(parents=True)
    (root / ".fetched").write_text(hashlib.sha256(kafka_jars._POM.encode()).hexdigest())
    return root / "lib"


def test_fetched_jars_are_reused_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = _fake_fetched_cache(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ensure_jars(tmp_path) == lib


def test_unfinished_fetch_is_redone_and_reports_missing_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_fetched_cache(tmp_path)
    (tmp_path / f"kafka-{local_kafka.KAFKA_VERSION}" / ".fetched").write_text("stale")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LocalKafkaError, match="'mvn' is not on PATH"):
        ensure_jars(tmp_path)


def test_cache_dir_prefers_the_environment_then_the_checkout(tmp_path: Path) -> None:
    assert default_cache_dir({"STREAM_SCORER_CACHE": str(tmp_path)}) == tmp_path
    checkout = Path(local_kafka.__file__).resolve().parents[2]
    assert default_cache_dir({}) == checkout / ".cache"


def test_jvm_options_default_to_c1_and_take_overrides_last() -> None:
    assert "-XX:TieredStopAtLevel=1" in local_kafka.jvm_options({})
    flags = local_kafka.jvm_options({"LOCAL_KAFKA_JVM_OPTS": "-XX:TieredStopAtLevel=4 -Xmx2g"})
    assert flags[-2:] == ["-XX:TieredStopAtLevel=4", "-Xmx2g"]


def test_broker_properties_describe_one_combined_node(tmp_path: Path) -> None:
    props = broker_properties(9092, 9093, tmp_path)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["log.dirs"] == str(tmp_path)
    assert props["auto.create.topics.enable"] == "false"
    replication = {k: v for k, v in props.items() if k.endswith(("replication.factor", "min.isr"))}
    assert set(replication.values()) == {"1"}
    assert len(replication) == 6
