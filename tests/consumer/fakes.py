"""In-memory stand-ins for the Kafka edge and the batch processor, for fast loop tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consumer.errors import FatalKafkaError, FeaturesUnavailableError, TransactionAbortedError
from consumer.stream.outcome import BatchOutcome, Output, Rejected
from consumer.stream.records import Delivery, InMessage, RebalanceHook, TopicPartition


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
        self.timeouts: list[float] = []
        self.seeks: list[dict[TopicPartition, int]] = []
        self.commit_failures: list[dict[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        on_assign(sorted(self.queues))

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[InMessage]:
        self.polls += 1
        self.timeouts.append(timeout_s)
        out: list[InMessage] = []
        for queue in self.queues.values():
            take = queue[: max_messages - len(out)]
            del queue[: len(take)]
            out.extend(take)
        return out

    def commit(self, positions: Mapping[TopicPartition, int], asynchronous: bool = True) -> None:
        (self.commits if asynchronous else self.sync_commits).append(dict(positions))

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        self.seeks.append(dict(positions))

    def pause(self, tps: Sequence[TopicPartition]) -> None:
        self.paused.update(tps)

    def resume(self, tps: Sequence[TopicPartition]) -> None:
        self.paused.difference_update(tps)

    def group_metadata(self) -> object:
        return "group-metadata"

    def take_commit_failures(self) -> list[dict[TopicPartition, int]]:
        out, self.commit_failures = self.commit_failures, []
        return out

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
        assert group_metadata == "group-metadata"
        self._pending_offsets = dict(positions)

    def commit_transaction(self, timeout_s: float = 30.0) -> None:
        failure, self.fail_next_commit = self.fail_next_commit, None
        if failure == "abortable":
            raise TransactionAbortedError("broker said abort")
        if failure == "fenced":
            raise FatalKafkaError("fenced by a newer instance")
        self.committed.extend(self.produced[self._start :])
        self.offsets.append(self._pending_offsets)
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
