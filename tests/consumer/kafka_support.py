"""Helpers for tests that run the scorer against the real broker."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from confluent_kafka import (
    Consumer,
    Message,
    Producer,
)
from prometheus_client import CollectorRegistry

from consumer.clock import SystemClock
from consumer.config import Config, load_config
from consumer.devtools import ranked_reader
from consumer.devtools.demo_data import DemoData
from consumer.devtools.generator import JobShape, generate_jobs, produce_jobs
from consumer.devtools.ranked_reader import headers_of
from consumer.service import Service
from schemas.records import RankedList, ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder


@dataclass(frozen=True, slots=True)
class Topics:
    jobs: str
    ranked: str
    group: str


def scorer_config(data: DemoData, bootstrap: str, topics: Topics, max_jobs: int = 64) -> Config:
    base = load_config({}, base_dir=str(data.root))
    return replace(
        base,
        kafka=replace(
            base.kafka,
            bootstrap_servers=bootstrap,
            input_topic=topics.jobs,
            output_topic=topics.ranked,
            group_id=topics.group,
            consumer={"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
        ),
        batch=replace(base.batch, max_jobs=max_jobs, max_wait_ms=20),
        models=replace(base.models, directory=str(data.models_dir)),
        features=replace(
            base.features, users_file=str(data.users_file), items_file=str(data.items_file)
        ),
        server=replace(base.server, enabled=False, port=0),
    )


def make_jobs(data: DemoData, n: int, seed: int = 1, mean_candidates: int = 60) -> list[ScoringJob]:
    rng = np.random.default_rng(seed)
    # a few unknown items too: they must be scored from their id alone
    items = np.concatenate([data.item_ids, np.arange(10**9, 10**9 + 50, dtype=np.int64)])
    shape = JobShape(mean_candidates=mean_candidates, top_k=10)
    return list(generate_jobs(rng, data.user_ids, items, n, shape, SystemClock()))


def produce(bootstrap: str, topic: str, jobs: list[ScoringJob]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    produce_jobs(
        producer, topic, JobEncoder(StaticRegistry()), iter(jobs), SystemClock(), stamp=False
    )


def produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value=value, key=b"raw")
    assert producer.flush(30) == 0


def read_ranked(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0
) -> list[tuple[bytes | None, dict[str, bytes], RankedList]]:
    """(key, headers, list) of every ranked list, lingering a second for duplicates."""
    records = ranked_reader.read_ranked(bootstrap, topic, expected, timeout_s)
    return [(r.key, r.headers, r.ranked) for r in records]


_COMMITTED_SCRIPT = """
import sys
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
bootstrap, group, topic, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
result = admin.list_consumer_group_offsets([request], require_stable=False)[group].result(10)
print(sum(max(tp.offset, 0) for tp in result.topic_partitions or []))
"""


def committed(bootstrap: str, topics: Topics, partitions: int) -> int:
    """Sum of the group's committed offsets over the input topic's partitions.

    Read through the admin API without `require_stable` (an exactly-once scorer always has a
    transaction in flight, and a stable read would wait for it), in a short-lived subprocess:
    while brokers restart under it, a long-lived admin client in the test process has crashed
    the interpreter. Transient failures (coordinator moving) are retried.
    """
    args = [sys.executable, "-c", _COMMITTED_SCRIPT, bootstrap, topics.group, topics.jobs,
            str(partitions)]  # fmt: skip
    for _ in range(20):
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode == 0:
            return int(done.stdout.strip())
        time.sleep(0.5)
    raise AssertionError(f"cannot read committed offsets: {done.stderr[-500:]}")


@contextmanager
def running(service: Service) -> Iterator[threading.Event]:
    """Run a scorer on a thread; stop it gracefully on exit."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run(stop)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "scorer did not stop"
    if errors:
        raise errors[0]


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    return registry.get_sample_value(name, labels or {}) or 0.0


def new_service(config: Config) -> tuple[Service, CollectorRegistry]:
    registry = CollectorRegistry()
    return Service(config, registry), registry


def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


def read_all(
    bootstrap: str, topic: str, *, committed_only: bool = True, idle_s: float = 3.0,
    timeout_s: float = 120.0, properties: Mapping[str, str] | None = None,
) -> list[Message]:  # fmt: skip
    """Every record of `topic` (read_committed by default), until nothing new for `idle_s`;
    `properties` add client settings (e.g. a secured cluster's)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        **(properties or {}),
    })  # fmt: skip
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() - last_new < idle_s and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(1000, 0.5) if m.error() is None]
            if batch:
                out.extend(batch)
                last_new = time.monotonic()
    finally:
        consumer.close()
    return out


def request_ids(messages: list[Message]) -> list[str]:
    """The request_id header of each record."""
    return [headers_of(m)["request_id"].decode() for m in messages]
