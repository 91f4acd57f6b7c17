"""Broker-side instruments of the end-to-end benchmark: the backlog, the group watch, the reader.

- ``prefill`` writes the backlog once and remembers, per partition and offset, how many candidates
  each job holds, so any committed prefix converts to a prediction count.
- ``GroupWatch`` owns the benchmark's one long-lived ``AdminClient``: when a group first holds an
  assignment (the start of consumption) and when its committed offsets reach a target (the last
  output acknowledged: every consumer under test commits an offset only after the outputs of the
  records before it are acknowledged).
- ``TopicReader`` consumes a topic on its own thread and stamps each record with its arrival
  time; decoding waits until the measurement is over, off the shared CPUs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka.admin import AdminClient

# the package re-exports these without declaring them: import them where they are defined
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType
from numpy.typing import NDArray

from bench.e2e_procs import Child
from consumer.clock import SystemClock
from consumer.devtools.generator import POOL_LISTS, JobShape, generate_jobs
from consumer.stream.kafka import produce_waiting
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder

POLL_S = 0.02  # resolution of the completion and assignment watches


class BenchError(RuntimeError):
    """A measurement could not complete (a child died, a bound passed)."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """A pre-filled topic: candidate count of every job, by partition and offset."""

    topic: str
    candidates: Mapping[int, NDArray[np.int64]]

    @property
    def jobs(self) -> int:
        return sum(c.size for c in self.candidates.values())

    @property
    def predictions(self) -> int:
        return sum(int(c.sum()) for c in self.candidates.values())

    def predictions_before(self, committed: Mapping[int, int]) -> int:
        """Candidates of every job below the committed offset of its partition."""
        return sum(int(c[: committed.get(p, 0)].sum()) for p, c in self.candidates.items())


def prefill(
    bootstrap: str,
    topic: str,
    ids: tuple[NDArray[np.int64], NDArray[np.int64]],
    n_jobs: int,
    traced_share: float | None = None,
    shape: JobShape | None = None,
) -> Backlog:
    """Produce ``n_jobs`` realistic jobs (of `shape`) as fast as the producer takes them.

    With `traced_share`, every job carries a W3C ``traceparent`` (a traced upstream producer)
    whose sampled flag is set on that share of the jobs.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
        }
    )
    acks: list[tuple[int, int, int]] = []
    failed: list[str] = []

    def report(size: int) -> Callable[[KafkaError | None, Message], None]:
        def done(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                acks.append((msg.partition() or 0, msg.offset() or 0, size))
            else:
                failed.append(str(err))

        return done

    clock, encoder = SystemClock(), JobEncoder(StaticRegistry(), candidate_cache=POOL_LISTS)
    rng = np.random.default_rng(2024)
    for job in generate_jobs(rng, ids[0], ids[1], n_jobs, shape or JobShape(), clock):
        value, key = encoder.encode(job), str(job.user_id).encode()
        headers = None if traced_share is None else _traceparent(rng, traced_share)
        produce_waiting(producer, topic, value, key, report(len(job.candidates)), headers)
        producer.poll(0)
    if producer.flush(120) or failed:
        raise BenchError(f"backlog not fully delivered: {failed[:1]}")
    return Backlog(topic, _by_partition(acks))


def _traceparent(
    rng: np.random.Generator, sampled_share: float
) -> list[tuple[str, str | bytes | None]]:
    trace, span = rng.bytes(16).hex(), rng.bytes(8).hex()
    flags = "01" if rng.random() < sampled_share else "00"
    return [("traceparent", f"00-{trace}-{span}-{flags}".encode())]


def _by_partition(acks: Sequence[tuple[int, int, int]]) -> dict[int, NDArray[np.int64]]:
    out: dict[int, NDArray[np.int64]] = {}
    for p in sorted({a[0] for a in acks}):
        rows = np.array([(o, n) for q, o, n in acks if q == p], np.int64)
        counts = np.zeros(int(rows[:, 0].max()) + 1, np.int64)
        counts[rows[:, 0]] = rows[:, 1]
        out[p] = counts
    return out


def join_once(bootstrap: str, topic: str, group: str, timeout_s: float = 60.0) -> None:
    """Join ``group`` on ``topic`` once and leave: a fresh broker creates its group coordinator
    (``__consumer_offsets``) on the first join, which would otherwise fall in the first
    measured consumer's start-up."""
    assigned = threading.Event()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.set())
    try:
        deadline = time.monotonic() + timeout_s
        while not assigned.is_set() and time.monotonic() < deadline:
            consumer.poll(0.1)
    finally:
        consumer.close()


class GroupWatch:
    """Group state seen from the benchmark, through one long-lived AdminClient."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})

    def assigned(self, group: str) -> bool:
        try:
            desc = self._admin.describe_consumer_groups([group])[group].result(timeout=5)
        except KafkaException:
            return False  # not created yet
        return any(m.assignment.topic_partitions for m in desc.members)

    def members_assigned(self, group: str) -> int:
        """Members holding partitions once the group is stable (0 while it rebalances)."""
        try:
            desc = self._admin.describe_consumer_groups([group])[group].result(timeout=5)
        except KafkaException:
            return 0
        if desc.state != ConsumerGroupState.STABLE:
            return 0
        return sum(1 for m in desc.members if m.assignment.topic_partitions)

    def wait_members(self, group: str, members: int, child: Child, timeout_s: float) -> float:
        """Monotonic time at which ``members`` members of a stable group held partitions."""
        for _ in _ticks(child, timeout_s, f"group {group} stable with {members} members"):
            if self.members_assigned(group) >= members:
                return time.monotonic()
        raise AssertionError("unreachable")

    def committed(self, group: str, topic: str) -> dict[int, int]:
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self._admin.list_consumer_group_offsets(request, require_stable=False)
        result = futures[group].result(timeout=5)
        return {
            tp.partition: tp.offset
            for tp in result.topic_partitions
            if tp.topic == topic and tp.offset >= 0
        }

    def wait_assigned(self, group: str, child: Child, timeout_s: float) -> float:
        """Monotonic time at which the group was first seen holding partitions."""
        for _ in _ticks(child, timeout_s, f"group {group} assignment"):
            if self.assigned(group):
                return time.monotonic()
        raise AssertionError("unreachable")

    def wait_committed(
        self, group: str, topic: str, target: int, child: Child, timeout_s: float
    ) -> tuple[float, dict[int, int], list[tuple[float, int]]]:
        """Poll until the committed total reaches ``target``; (time, offsets, series)."""
        series: list[tuple[float, int]] = []
        for _ in _ticks(child, timeout_s, f"group {group} reaching {target} committed"):
            committed = self.committed(group, topic)
            now = time.monotonic()
            series.append((now, sum(committed.values())))
            if series[-1][1] >= target:
                return now, committed, series
        raise AssertionError("unreachable")

    def log_append_time(self, topic: str) -> None:
        """Make the broker stamp every record of ``topic`` when it appends it (LogAppendTime):
        a consumer then reads when the record reached the broker."""
        entry = ConfigEntry(
            "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
        )
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        for future in self._admin.incremental_alter_configs([resource]).values():
            future.result(timeout=30)

    def delete_topics(self, topics: Sequence[str]) -> None:
        for future in self._admin.delete_topics(list(topics), operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # best effort
                future.result(timeout=30)


def _ticks(child: Child, timeout_s: float, what: str) -> Iterator[None]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise BenchError(f"{what}: the process exited\n{child.log_tail()}")
        yield
        time.sleep(POLL_S)
    raise BenchError(f"{what}: not within {timeout_s:.0f} s\n{child.log_tail()}")


class TopicReader:
    """Consumes ``topic`` from the start on a thread, keeping per record its arrival (epoch ms),
    its time stamp (CreateTime: when the writer called produce; LogAppendTime: when the broker
    appended it) and, if asked, its value, or what ``reduce`` keeps of it (say, one field).
    """

    def __init__(
        self, bootstrap: str, topic: str, group: str, keep_values: bool,
        reduce: Callable[[bytes], bytes] | None = None,
    ) -> None:  # fmt: skip
        self._conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
        self._topic, self._keep, self._reduce = topic, keep_values, reduce
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._records: list[tuple[float, int, bytes]] = []
        self._thread = threading.Thread(target=self._run, name=f"reader-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer = Consumer(self._conf)
        consumer.subscribe([self._topic], on_assign=lambda _c, _p: self._ready.set())
        try:
            while not self._stop.is_set():
                # consume(n, timeout) would wait for n records: poll returns with the first,
                # then whatever else is already fetched comes without waiting.
                first = consumer.poll(0.05)
                if first is None:
                    continue
                arrived = time.time() * 1000.0
                batch = [first, *consumer.consume(1000, 0)]
                good = [
                    (arrived, m.timestamp()[1], self._value(m) if self._keep else b"")
                    for m in batch
                    if m.error() is None
                ]
                with self._lock:
                    self._records.extend(good)
        finally:
            consumer.close()

    def _value(self, message: Message) -> bytes:
        value = message.value() or b""
        return self._reduce(value) if self._reduce is not None else value

    def wait_ready(self, timeout_s: float) -> None:
        if not self._ready.wait(timeout_s):
            raise BenchError(f"the reader of {self._topic} got no partitions in {timeout_s:.0f} s")

    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def wait_count(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.count() < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        return True

    def close(self) -> list[tuple[float, int, bytes]]:
        self._stop.set()
        self._thread.join(30)
        with self._lock:
            return list(self._records)
