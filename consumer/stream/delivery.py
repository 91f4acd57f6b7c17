"""How a batch's outputs reach the broker and its offsets get committed: one class per mode.

`AtLeastOnce`: outputs are produced asynchronously; each input offset is finished when all its
outputs are acknowledged (`OffsetTracker`), and the finished prefix is committed as the next
offset to read. A failed delivery raises `DeliveryError` before anything past it is committed.

`ExactlyOnce`: a transactional producer; each batch's outputs and its consumed offsets commit in
one transaction (`send_offsets_to_transaction` with the consumer's group metadata), so
read_committed consumers see each job's ranked list exactly once. An abortable error aborts the
transaction and rewinds the consumer to the batch's first offsets (`TransactionAbortedError`, the
loop retries); fencing or a fatal error raises `FatalKafkaError` (exit non-zero).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from consumer.clock import Clock
from consumer.errors import DeliveryError, TransactionAbortedError
from consumer.metrics import Metrics
from consumer.stream.offsets import OffsetTracker
from consumer.stream.records import (
    Delivery,
    InMessage,
    OutRecord,
    Sink,
    Source,
    TopicPartition,
    TransactionalSink,
)

log = logging.getLogger(__name__)


def batch_starts(batch: Sequence[InMessage]) -> dict[TopicPartition, int]:
    """The first offset of each partition in a batch: where a retry must re-read from."""
    starts: dict[TopicPartition, int] = {}
    for msg in batch:
        starts.setdefault((msg.topic, msg.partition), msg.offset)
    return starts


def batch_ends(batch: Sequence[InMessage]) -> dict[TopicPartition, int]:
    """The next offset to read of each partition after a batch."""
    return {(m.topic, m.partition): m.offset + 1 for m in batch}


class AtLeastOnce:
    """Asynchronous produce, commit of the acknowledged prefix."""

    def __init__(
        self, source: Source, sink: Sink, metrics: Metrics, clock: Clock,
        commit_interval_s: float = 0.0,
    ) -> None:  # fmt: skip
        self._source = source
        self._sink = sink
        self._metrics = metrics
        self.tracker = OffsetTracker()
        # Committing after every small batch costs the broker a request each time; offsets
        # finished meanwhile are simply committed together at the next interval.
        self._clock = clock
        self._commit_interval_s = commit_interval_s
        self._next_commit = 0.0

    def deliver(self, batch: Sequence[InMessage], records: Sequence[OutRecord]) -> None:
        counts: dict[tuple[TopicPartition, int], int] = {}
        for rec in records:
            token = ((rec.source.topic, rec.source.partition), rec.source.offset)
            counts[token] = counts.get(token, 0) + 1
        for msg in batch:
            tp = (msg.topic, msg.partition)
            self.tracker.track(tp, msg.offset, counts.get((tp, msg.offset), 0))
        for rec in records:
            token = ((rec.source.topic, rec.source.partition), rec.source.offset)
            self._sink.produce(rec.topic, rec.key, rec.value, rec.headers, token)

    def in_flight(self) -> int:
        return self.tracker.in_flight()

    def service(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports and commit what finished."""
        self._sink.poll(timeout_s)
        self._settle()
        for failed in self._source.take_commit_failures():
            log.warning("offset commit failed for %s: committing again", sorted(failed))
            self._metrics.errors.labels("commit").inc()
            self.tracker.commit_failed(failed)
        now = self._clock.monotonic()
        if now >= self._next_commit:
            self._next_commit = now + self._commit_interval_s
            self.commit()

    def _settle(self) -> None:
        failed: Delivery | None = None
        for delivery in self._sink.take_deliveries():
            if delivery.error is not None:
                # Left unacknowledged: the tracker never commits past this offset.
                self._metrics.errors.labels("delivery").inc()
                failed = failed or delivery
                continue
            self.tracker.ack(*delivery.token)
            self._metrics.ranked_lists_produced.inc()
        self._metrics.in_flight.set(self.tracker.in_flight())
        if failed is not None:
            raise DeliveryError(f"output for {failed.token} not delivered: {failed.error}")

    def commit(self, asynchronous: bool = True, only: set[TopicPartition] | None = None) -> None:
        positions = self.tracker.committable()
        if only is not None:
            positions = {tp: o for tp, o in positions.items() if tp in only}
        if not positions:
            return
        self._source.commit(positions, asynchronous=asynchronous)
        self.tracker.mark_committed(positions)
        self._metrics.committed_offsets.inc()

    def drain(self, timeout_s: float) -> None:
        remaining = self._sink.flush(timeout_s)
        self._settle()
        if remaining:
            log.error("%d outputs still unacknowledged after %.1fs", remaining, timeout_s)

    def on_revoke(self, tps: list[TopicPartition], timeout_s: float) -> None:
        self.drain(timeout_s)
        self.commit(asynchronous=False, only=set(tps))
        self.tracker.revoke(tps)

    def close(self, timeout_s: float) -> None:
        try:
            self.drain(timeout_s)
        finally:
            self.commit(asynchronous=False)  # only finished offsets: safe after a failure


class StallWatchdog:
    """Exits the process when one guarded step runs longer than its bound.

    librdkafka's transactional calls can block past their own timeouts when the broker restarts
    under them (seen: `send_offsets_to_transaction` waiting forever). A stuck exactly-once worker
    holds its partitions and its open transaction; exiting non-zero lets the supervisor restart
    it, and the restart fences the stuck transaction, which the broker then aborts.
    """

    def __init__(self, bound_s: float, exit_code: int = 75) -> None:
        self._bound_s = bound_s
        self._exit_code = exit_code
        self._armed_at: float | None = None
        self._label = ""
        thread = threading.Thread(target=self._watch, name="txn-watchdog", daemon=True)
        thread.start()

    def arm(self, label: str) -> None:
        self._label = label
        self._armed_at = time.monotonic()

    def disarm(self) -> None:
        self._armed_at = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self._bound_s / 4))
            armed_at = self._armed_at
            if armed_at is not None and time.monotonic() - armed_at > self._bound_s:
                log.critical(
                    "%s stalled for more than %.0fs: exiting with %d so a supervisor "
                    "restarts this worker",
                    self._label,
                    self._bound_s,
                    self._exit_code,
                )
                logging.shutdown()
                os._exit(self._exit_code)


class ExactlyOnce:
    """One transaction per batch: outputs plus the batch's consumed offsets."""

    def __init__(
        self, source: Source, sink: TransactionalSink, metrics: Metrics, stall_s: float = 60.0
    ) -> None:
        self._source = source
        self._sink = sink
        self._metrics = metrics
        self._watchdog = StallWatchdog(stall_s)
        started = time.monotonic()
        sink.init_transactions()
        log.info("transactions initialised in %.2fs", time.monotonic() - started)

    def deliver(self, batch: Sequence[InMessage], records: Sequence[OutRecord]) -> None:
        if not batch:
            return
        self._watchdog.arm(f"the transaction of a {len(batch)}-record batch")
        try:
            self._sink.begin()
            for rec in records:
                token = ((rec.source.topic, rec.source.partition), rec.source.offset)
                self._sink.produce(rec.topic, rec.key, rec.value, rec.headers, token)
            self._sink.send_offsets(batch_ends(batch), self._source.group_metadata())
            self._sink.commit_transaction()
        except TransactionAbortedError:
            self._abort(batch)
            raise
        finally:
            self._watchdog.disarm()
        self._sink.take_deliveries()  # all acknowledged by the commit
        self._metrics.ranked_lists_produced.inc(len(records))
        self._metrics.committed_offsets.inc()

    def _abort(self, batch: Sequence[InMessage]) -> None:
        log.warning("aborting the transaction of a %d-record batch; it will be re-read", len(batch))
        self._metrics.errors.labels("transaction_aborted").inc()
        self._sink.abort_transaction()
        self._source.seek(batch_starts(batch))

    def in_flight(self) -> int:
        return 0

    def service(self, timeout_s: float = 0.0) -> None:
        self._sink.poll(timeout_s)

    def on_revoke(self, tps: list[TopicPartition], timeout_s: float) -> None:
        return None  # every transaction completes before the next poll: nothing in flight

    def close(self, timeout_s: float) -> None:
        self._sink.flush(timeout_s)
