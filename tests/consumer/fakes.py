"""In-memory stand-ins for the Kafka edge and the batch processor, for fast loop tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consumer.errors import FatalKafkaError, FeaturesUnavailableError, TransactionAbortedError
from consumer.stream.outcome import BatchOutcome, Output, Rejected
from consumer.stream.records import Delivery, InMessage, RebalanceHook, TopicPartition


class FakeBroker:
    """Partition logs and each group's committed offsets, shared by the fakes of one test."""

    def __init__(self) -> None:
        self.logs: dict[TopicPartition, list[InMessage]] = {}
        self.group_offsets: dict[str, dict[TopicPartition, int]] = {}

    def append(self, tp: TopicPartition, value: bytes | None, key: bytes | None = None) -> int:
        log = self.logs.setdefault(tp, [])
        log.append(InMessage(tp[0], tp[1], len(log), key, value, 0))
        return len(log) - 1


@dataclass(frozen=True, slots=True)
class FakeGroupMetadata:
    """What `FakeSource.group_metadata` hands a transactional sink: where to commit offsets."""

    broker: FakeBroker
    group: str


class FakeSource:
    """A subscribed consumer over fixed partitions of a `FakeBroker`'s logs.

    Like `KafkaSource` (the contract suite holds both to the same cases): a group starts at its
    committed offsets, `seek` moves the next offset to read, paused partitions yield nothing, and
    commits are stored for the group.
    """

    def __init__(
        self,
        records: Mapping[TopicPartition, list[bytes]],
        on_assign: RebalanceHook,
        on_revoke: RebalanceHook,
        broker: FakeBroker | None = None,
        group: str = "group",
    ) -> None:
        self.broker = broker or FakeBroker()
        for tp, values in records.items():
            self.broker.logs.setdefault(tp, [])
            for v in values:
                self.broker.append(tp, v)
        self.group = group
        committed = self.broker.group_offsets.setdefault(group, {})
        self.next_offsets = {tp: committed.get(tp, 0) for tp in sorted(self.broker.logs)}
        self.on_revoke = on_revoke
        self.commits: list[dict[TopicPartition, int]] = []
        self.sync_commits: list[dict[TopicPartition, int]] = []
        self.closed = False
        self.polls = 0
        self.timeouts: list[float] = []
        self.seeks: list[dict[TopicPartition, int]] = []
        self.commit_failures: list[dict[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        on_assign(sorted(self.next_offsets))

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[InMessage]:
        self.polls += 1
        self.timeouts.append(timeout_s)
        out: list[InMessage] = []
        for tp, start in self.next_offsets.items():
            if tp in self.paused:
                continue
            take = self.broker.logs[tp][start : start + max_messages - len(out)]
            self.next_offsets[tp] = start + len(take)
            out.extend(take)
        return out

    def commit(self, positions: Mapping[TopicPartition, int], asynchronous: bool = True) -> None:
        (self.commits if asynchronous else self.sync_commits).append(dict(positions))
        self.broker.group_offsets[self.group].update(positions)

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        self.seeks.append(dict(positions))
        for tp, offset in positions.items():
            if tp in self.next_offsets:
                self.next_offsets[tp] = offset

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        self.paused.update(tps)

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        self.paused.difference_update(tps)

    def group_metadata(self) -> object:
        return FakeGroupMetadata(self.broker, self.group)

    def take_commit_failures(self) -> list[dict[TopicPartition, int]]:
        out, self.commit_failures = self.commit_failures, []
        return out

    def lag(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.broker.logs[tp]) - self.next_offsets[tp] for tp in tps}

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
        self.produced: list[tuple[str, bytes | None, bytes | None, tuple[TopicPartition, int]]] = []
        self.headers: list[dict[str, bytes]] = []
        self.unacked: list[tuple[TopicPartition, int]] = []
        self.reports: list[Delivery] = []
        self.fail_tokens: set[tuple[TopicPartition, int]] = set()

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        token: tuple[TopicPartition, int],
    ) -> None:
        self.produced.append((topic, key, value, token))
        self.headers.append(dict(headers))
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


class FakeTransactionalSink(FakeSink):
    """Transactions over the fake sink: committed records, offsets sent, scripted failures."""

    def __init__(self) -> None:
        super().__init__(auto_ack=True)
        self.committed: list[
            tuple[str, bytes | None, bytes | None, tuple[TopicPartition, int]]
        ] = []
        self.offsets: list[dict[TopicPartition, int]] = []
        self.open = False
        self.aborts = 0
        self.fail_next_commit: str | None = None  # "abortable" | "fenced"

    def init_transactions(self, timeout_s: float = 30.0) -> None:
        return None

    def begin(self) -> None:
        assert not self.open, "transaction already open"
        self.open = True
        self._start = len(self.produced)

    def send_offsets(
        self,
        positions: Mapping[TopicPartition, int],
        group_metadata: object,
        timeout_s: float = 30.0,
    ) -> None:
        assert isinstance(group_metadata, FakeGroupMetadata)
        self._pending_offsets = dict(positions)
        self._group = group_metadata

    def commit_transaction(self, timeout_s: float = 30.0) -> None:
        failure, self.fail_next_commit = self.fail_next_commit, None
        if failure == "abortable":
            raise TransactionAbortedError("broker said abort")
        if failure == "fenced":
            raise FatalKafkaError("fenced by a newer instance")
        self.committed.extend(self.produced[self._start :])
        self.offsets.append(self._pending_offsets)
        self._group.broker.group_offsets[self._group.group].update(self._pending_offsets)
        self.open = False

    def abort_transaction(self, timeout_s: float = 30.0) -> None:
        self.aborts += 1
        self.open = False


class FakePending:
    def __init__(self, payloads: list[bytes | None]) -> None:
        self.payloads = payloads
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeProcessor:
    """Payloads starting with b'bad' are rejected; every other payload yields one output."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.begun: list[int] = []
        self.unavailable = 0  # the next n calls raise FeaturesUnavailableError

    def begin(self, payloads: Sequence[bytes | None]) -> FakePending:
        self.begun.append(len(payloads))
        return FakePending(list(payloads))

    def finish(self, pending: FakePending) -> BatchOutcome:
        return self.process(pending.payloads)

    def process(self, payloads: Sequence[bytes | None]) -> BatchOutcome:
        if self.unavailable:
            self.unavailable -= 1
            raise FeaturesUnavailableError("feature store down")
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
