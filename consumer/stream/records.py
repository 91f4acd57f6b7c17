"""The Kafka loop's own records and seams: what crosses between the loop and its edges.

Everything here is plain Python (frozen, slotted records and `Protocol`s): no librdkafka type
reaches past `consumer.stream.kafka`, so the loop, the delivery modes, the dead-letter writer and
the test fakes name these types without importing confluent_kafka.

- `InMessage`: one consumed record, headers included. `OutRecord`: one record to produce and the
  input it finishes. `Delivery`: the broker's answer for one produced record, tagged with that
  input.
- `Source` / `Sink` / `TransactionalSink`: the consumer and producer as the loop sees them
  (`KafkaSource`/`KafkaSink` in production, fakes in unit tests; the contract suite runs the same
  cases against both).
- `Processor`: one micro-batch from payloads to outputs, in two steps so a remote feature fetch
  can overlap the previous batch's CPU work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from consumer.stream.outcome import BatchOutcome

TopicPartition = tuple[str, int]
RebalanceHook = Callable[[list[TopicPartition]], None]
Token = tuple[TopicPartition, int]  # (input partition, input offset) an output belongs to


@dataclass(frozen=True, slots=True)
class InMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = ()  # as consumed (trace context among them)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce, and the input record it finishes."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    source: InMessage


@dataclass(frozen=True, slots=True)
class Delivery:
    token: Token
    error: str | None


class Source(Protocol):
    def poll_batch(self, max_messages: int, timeout_s: float) -> list[InMessage]: ...

    def commit(
        self, positions: Mapping[TopicPartition, int], asynchronous: bool = True
    ) -> None: ...

    def seek(self, positions: Mapping[TopicPartition, int]) -> None: ...

    def pause(self, tps: Sequence[TopicPartition]) -> None: ...

    def resume(self, tps: Sequence[TopicPartition]) -> None: ...

    def group_metadata(self) -> object: ...

    def take_commit_failures(self) -> list[dict[TopicPartition, int]]: ...

    def lag(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]: ...

    def close(self) -> None: ...


SourceFactory = Callable[[RebalanceHook, RebalanceHook], Source]


class Sink(Protocol):
    def produce(
        self, topic: str, key: bytes | None, value: bytes | None,
        headers: list[tuple[str, bytes]], token: Token,
    ) -> None: ...  # fmt: skip

    def poll(self, timeout_s: float = 0.0) -> None: ...

    def take_deliveries(self) -> list[Delivery]: ...

    def flush(self, timeout_s: float) -> int: ...


class TransactionalSink(Sink, Protocol):
    def init_transactions(self, timeout_s: float = 30.0) -> None: ...

    def begin(self) -> None: ...

    def send_offsets(
        self, positions: Mapping[TopicPartition, int], group_metadata: object,
        timeout_s: float = 30.0,
    ) -> None: ...  # fmt: skip

    def commit_transaction(self, timeout_s: float = 30.0) -> None: ...

    def abort_transaction(self, timeout_s: float = 30.0) -> None: ...


class Started(Protocol):
    """A batch between `Processor.begin` and `Processor.finish`."""

    def cancel(self) -> None: ...


P = TypeVar("P", bound=Started)


class Processor(Protocol[P]):
    def begin(self, payloads: Sequence[bytes | None]) -> P: ...

    def finish(self, pending: P) -> BatchOutcome: ...
