"""In-memory stand-ins for the Kafka edge and the batch processor, for fast loop tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consumer.kafka_io import Delivery, InMessage, RebalanceHook
from consumer.offsets import TopicPartition
from consumer.outcome import BatchOutcome, Output, Rejected


class FakeSource:
    """A subscribed consumer over fixed partitions of in-memory records."""

    def __init__(
        self,
        records: Mapping[TopicPartition, list[bytes]],
        on_assign: RebalanceHook,
        on_revoke: RebalanceHook,
    ) -> None:
        self.queues = {
            tp: [InMessage(tp[0], tp[1], o, None, v, 0) for o, v in enumerate(vals)]
            for tp, vals in records.items()
        }
        self.on_revoke = on_revoke
        self.commits: list[dict[TopicPartition, int]] = []
        self.sync_commits: list[dict[TopicPartition, int]] = []
        self.closed = False
        self.polls = 0
        on_assign(sorted(self.queues))

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[InMessage]:
        self.polls += 1
        out: list[InMessage] = []
        for queue in self.queues.values():
            take = queue[: max_messages - len(out)]
            del queue[: len(take)]
            out.extend(take)
        return out

    def commit(self, positions: Mapping[TopicPartition, int], asynchronous: bool = True) -> None:
        (self.commits if asynchronous else self.sync_commits).append(dict(positions))

    def lag(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.queues.get(tp, [])) for tp in tps}

    def close(self) -> None:
        self.closed = True

    def position(self, tp: TopicPartition) -> int | None:
        """Last committed position of `tp`, async or sync."""
        seen = [c[tp] for c in self.commits + self.sync_commits if tp in c]
        return max(seen) if seen else None


class FakeSink:
    """A producer whose acknowledgements the test releases (or fails) explicitly."""

    def __init__(self, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.produced: list[tuple[str, bytes, bytes, tuple[TopicPartition, int]]] = []
        self.unacked: list[tuple[TopicPartition, int]] = []
        self.reports: list[Delivery] = []
        self.fail_tokens: set[tuple[TopicPartition, int]] = set()

    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        token: tuple[TopicPartition, int],
    ) -> None:
        self.produced.append((topic, key, value, token))
        self.unacked.append(token)

    def release(self) -> None:
        for token in self.unacked:
            error = "broker said no" if token in self.fail_tokens else None
            self.reports.append(Delivery(token, error))
        self.unacked.clear()

    def poll(self, timeout_s: float = 0.0) -> None:
        if self.auto_ack:
            self.release()

    def take_deliveries(self) -> list[Delivery]:
        out, self.reports = self.reports, []
        return out

    def flush(self, timeout_s: float) -> int:
        self.release()
        return 0


class FakeProcessor:
    """Payloads starting with b'bad' are rejected; every other payload yields one output."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def process(self, payloads: Sequence[bytes | None]) -> BatchOutcome:
        self.batches.append(len(payloads))
        outcome = BatchOutcome()
        for pos, payload in enumerate(payloads):
            if payload is None or payload.startswith(b"bad"):
                outcome.rejected.append(Rejected(pos, "decode", "not a job"))
            else:
                outcome.outputs.append(Output(pos, b"k", b"ranked:" + payload, []))
        outcome.predictions["m"] = len(outcome.outputs)
        outcome.jobs["m"] = len(outcome.outputs)
        return outcome
