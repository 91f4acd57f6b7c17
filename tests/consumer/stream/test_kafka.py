"""The Kafka edge's helpers that need no broker."""

from __future__ import annotations

from typing import Any

from consumer.stream.kafka import produce_waiting


class FullQueueProducer:
    """Raises BufferError for the first ``full`` produce calls, as librdkafka does when full."""

    def __init__(self, full: int) -> None:
        self.full = full
        self.polls: list[float] = []
        self.produced: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.produced.append({"topic": topic, **kwargs})

    def poll(self, timeout: float) -> int:
        self.polls.append(timeout)
        return 0


def test_a_full_queue_is_served_then_the_record_is_produced_once() -> None:
    producer = FullQueueProducer(full=2)

    def ack(err: Any, msg: Any) -> None: ...

    produce_waiting(producer, "t", b"v", b"k", ack, [("h", b"1")])  # type: ignore[arg-type]
    assert producer.polls == [0.05, 0.05]
    assert producer.produced == [
        {"topic": "t", "value": b"v", "key": b"k", "headers": [("h", b"1")], "on_delivery": ack}
    ]
