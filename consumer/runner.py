"""The Kafka loop: poll a micro-batch, process it, produce the outputs, commit what is finished.

Invariants (at-least-once):
- An input offset is committed only after every output it caused was acknowledged by the broker
  (`OffsetTracker`); a rejected input has no outputs and is finished at once.
- A failed delivery stops the loop before anything past it is committed (exit non-zero; a restart
  re-reads from the last commit).
- On revocation the producer is flushed and finished offsets of the revoked partitions are
  committed synchronously before the partitions are released.
- The loop owns its thread; feature fetches go through the `fetch` callable (an asyncio bridge in
  production) and never run librdkafka calls on an event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from consumer.clock import Clock
from consumer.config import Config
from consumer.errors import DeliveryError
from consumer.kafka_io import Delivery, InMessage, RebalanceHook
from consumer.metrics import Metrics
from consumer.offsets import OffsetTracker, TopicPartition
from consumer.outcome import BatchOutcome

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 1.0
SHUTDOWN_FLUSH_S = 10.0


class Source(Protocol):
    def poll_batch(self, max_messages: int, timeout_s: float) -> list[InMessage]: ...

    def commit(
        self, positions: Mapping[TopicPartition, int], asynchronous: bool = True
    ) -> None: ...

    def lag(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]: ...

    def close(self) -> None: ...


class Sink(Protocol):
    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, bytes]],
        token: tuple[TopicPartition, int],
    ) -> None: ...

    def poll(self, timeout_s: float = 0.0) -> None: ...

    def take_deliveries(self) -> list[Delivery]: ...

    def flush(self, timeout_s: float) -> int: ...


class Processor(Protocol):
    def process(self, payloads: Sequence[bytes | None]) -> BatchOutcome: ...


SourceFactory = Callable[[RebalanceHook, RebalanceHook], Source]


class LoopState:
    """What health endpoints and the demo read about the loop, updated by the loop only."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.last_beat: float = 0.0
        self.running = False
        self.lag: dict[TopicPartition, int] = {}


class ScoringLoop:
    """Consume -> process -> produce -> commit, until `stop` is set."""

    def __init__(
        self,
        config: Config,
        make_source: SourceFactory,
        sink: Sink,
        processor: Processor,
        metrics: Metrics,
        clock: Clock,
        state: LoopState | None = None,
    ) -> None:
        self._cfg = config
        self._sink = sink
        self._processor = processor
        self._metrics = metrics
        self._clock = clock
        self.state = state or LoopState()
        self._tracker = OffsetTracker()
        self._next_lag = 0.0
        self._source = make_source(self._on_assign, self._on_revoke)

    def run(self, stop: threading.Event) -> None:
        self.state.running = True
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.state.running = False
            self._shutdown()

    def step(self) -> None:
        """One iteration: poll, process, serve deliveries, commit, refresh lag."""
        now = self._clock.monotonic()
        self.state.last_beat = now
        self._wait_for_room()
        t0 = self._clock.monotonic()
        batch = self._source.poll_batch(
            self._cfg.batch.max_jobs, self._cfg.batch.max_wait_ms / 1000
        )
        if batch:
            self._metrics.stages["poll"].observe(self._clock.monotonic() - t0)
            self._handle(batch)
        self._sink.poll(0)
        self._settle()
        self._commit()
        if now >= self._next_lag:
            self._next_lag = now + LAG_INTERVAL_S
            self._refresh_lag()

    def _handle(self, batch: list[InMessage]) -> None:
        outcome = self._processor.process([m.value for m in batch])
        self._record(outcome, len(batch))
        outputs_at = np.bincount([o.position for o in outcome.outputs], minlength=len(batch))
        for msg, count in zip(batch, outputs_at.tolist(), strict=True):
            self._tracker.track((msg.topic, msg.partition), msg.offset, count)
        t0 = self._clock.monotonic()
        topic = self._cfg.kafka.output_topic
        for out in outcome.outputs:
            msg = batch[out.position]
            self._sink.produce(
                topic, out.key, out.value, out.headers, ((msg.topic, msg.partition), msg.offset)
            )
        for rej in outcome.rejected:
            msg = batch[rej.position]
            log.warning(
                "skipping %s[%d]@%d (%s): %s",
                msg.topic,
                msg.partition,
                msg.offset,
                rej.kind,
                rej.reason,
            )
        self._metrics.stages["produce"].observe(self._clock.monotonic() - t0)

    def _record(self, outcome: BatchOutcome, size: int) -> None:
        m = self._metrics
        m.jobs_consumed.inc(size)
        m.batch_size.observe(size)
        for stage, seconds in outcome.stage_seconds.items():
            m.stages[stage].observe(seconds)
        for model, n in outcome.predictions.items():
            m.predictions.labels(model).inc(n)
        for model, n in outcome.jobs.items():
            m.jobs_scored.labels(model).inc(n)
        for rej in outcome.rejected:
            m.errors.labels(rej.kind).inc()
        for latency_ms in outcome.e2e_ms.tolist():
            m.e2e_latency.observe(latency_ms / 1000)

    def _settle(self) -> None:
        """Apply delivery reports to the tracker; a failed delivery stops the loop."""
        failed: Delivery | None = None
        for delivery in self._sink.take_deliveries():
            if delivery.error is not None:
                # Left unacknowledged: the tracker never commits past this offset.
                self._metrics.errors.labels("delivery").inc()
                failed = failed or delivery
                continue
            self._tracker.ack(*delivery.token)
            self._metrics.ranked_lists_produced.inc()
        self._metrics.in_flight.set(self._tracker.in_flight())
        if failed is not None:
            raise DeliveryError(f"output for {failed.token} not delivered: {failed.error}")

    def _commit(self, asynchronous: bool = True, only: set[TopicPartition] | None = None) -> None:
        positions = self._tracker.committable()
        if only is not None:
            positions = {tp: o for tp, o in positions.items() if tp in only}
        if not positions:
            return
        t0 = self._clock.monotonic()
        self._source.commit(positions, asynchronous=asynchronous)
        self._tracker.mark_committed(positions)
        self._metrics.committed_offsets.inc()
        self._metrics.stages["commit"].observe(self._clock.monotonic() - t0)

    def _wait_for_room(self) -> None:
        """Backpressure: while too many outputs await acks, serve deliveries instead of polling."""
        limit = self._cfg.batch.max_in_flight_jobs
        while self._tracker.in_flight() >= limit:
            self._sink.poll(0.05)
            self._settle()
            self._commit()

    def _refresh_lag(self) -> None:
        if not self.state.assigned:
            return
        lag = self._source.lag(sorted(self.state.assigned))
        self.state.lag = lag
        for (topic, partition), value in lag.items():
            self._metrics.consumer_lag.labels(topic, str(partition)).set(value)

    def _on_assign(self, tps: list[TopicPartition]) -> None:
        self.state.assigned.update(tps)
        self._metrics.assigned_partitions.set(len(self.state.assigned))
        log.info("assigned %s", tps)

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        log.info("revoking %s", tps)
        revoked = set(tps)
        self._drain(SHUTDOWN_FLUSH_S)
        self._commit(asynchronous=False, only=revoked)
        self._tracker.revoke(tps)
        self.state.assigned.difference_update(revoked)
        for topic, partition in tps:
            if self.state.lag.pop((topic, partition), None) is not None:
                self._metrics.consumer_lag.remove(topic, str(partition))
        self._metrics.assigned_partitions.set(len(self.state.assigned))

    def _drain(self, timeout_s: float) -> None:
        remaining = self._sink.flush(timeout_s)
        self._settle()
        if remaining:
            log.error("%d outputs still unacknowledged after %.1fs", remaining, timeout_s)

    def _shutdown(self) -> None:
        try:
            try:
                self._drain(SHUTDOWN_FLUSH_S)
            finally:
                self._commit(asynchronous=False)  # only finished offsets: safe after a failure
        finally:
            self._source.close()
            log.info("scoring loop stopped")
