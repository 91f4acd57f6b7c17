"""The Kafka loop: poll a micro-batch, process it, hand the outputs to the delivery mode.

Invariants:
- Offsets move only through the delivery mode (`consumer.stream.delivery`): at-least-once commits
  the acknowledged prefix; exactly-once commits outputs and offsets in one transaction per batch.
- Poison records become dead-letter records (when a dead-letter topic is configured) or are
  counted, logged and skipped; either way their offsets are committed like any other.
- A retriable failure of a whole batch (feature store unavailable under the `pause` policy,
  schema registry down) rewinds the batch's partitions, pauses consumption and keeps polling, so
  the worker stays in its group; consumption resumes after a growing backoff.
- On revocation the in-flight work of the revoked partitions is finished and committed before the
  partitions are released. The loop owns its thread; librdkafka never runs on an event loop.
- Once per iteration (and while waiting for acknowledgements) the `ConnectionWatch` judges what
  the clients' callbacks recorded; a cluster lost past its bound raises `DependencyLostError`,
  and the loop then closes without draining or committing (nothing can reach the broker).
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, Protocol, cast

from consumer.clock import Clock
from consumer.config import Config
from consumer.errors import (
    DependencyLostError,
    FeaturesUnavailableError,
    TransactionAbortedError,
    TransportError,
)
from consumer.metrics import Metrics, observe_many
from consumer.stream.dead_letter import dead_letter
from consumer.stream.delivery import AtLeastOnce, ExactlyOnce, batch_starts
from consumer.stream.outcome import BatchOutcome
from consumer.stream.records import (
    InMessage,
    OutRecord,
    P,
    Processor,
    Sink,
    SourceFactory,
    TopicPartition,
    TransactionalSink,
)
from consumer.stream.tracing import BatchTrace, StreamTracing

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 1.0
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


class LoopState:
    """What health endpoints and the demo read about the loop, updated by the loop only."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.last_beat: float = 0.0
        self.running = False
        self.lag: dict[TopicPartition, int] = {}
        self.kafka_up = True  # False while the ConnectionWatch judges the cluster unreachable


class ConnectionWatch(Protocol):
    """Judges the Kafka clients' callback facts (`consumer.stream.connection.BrokerWatch`)."""

    @property
    def up(self) -> bool: ...

    def observe(self) -> None:
        """May raise `DependencyLostError` once the cluster was unreachable past its bound."""
        ...


class ScoringLoop(Generic[P]):
    """Consume -> process -> deliver -> commit, until `stop` is set."""

    def __init__(
        self,
        config: Config,
        make_source: SourceFactory,
        sink: Sink,
        processor: Processor[P],
        metrics: Metrics,
        clock: Clock,
        state: LoopState | None = None,
        overlap_fetch: bool = False,
        tracing: StreamTracing | None = None,
        watch: ConnectionWatch | None = None,
    ) -> None:
        self._cfg = config
        self._watch = watch
        # Trace context of each job continued on its outputs (None or inactive: no trace work);
        # delivered batches whose spans end at the next delivery service wait in _open_traces.
        self._tracing = tracing if tracing is not None and tracing.active else None
        self._open_traces: list[BatchTrace] = []
        # Overlapped: batch N+1 is decoded and its feature fetch started before batch N is scored
        # and delivered, so a remote feature store's latency overlaps CPU work.
        self._overlap = overlap_fetch
        self._pending: tuple[list[InMessage], P] | None = None
        self._processor = processor
        self._metrics = metrics
        self._clock = clock
        self.state = state or LoopState()
        self._next_lag = 0.0
        self._last_poll = 0.0  # when the previous poll returned (the input queue was drained)
        self._paused: set[TopicPartition] = set()
        self._resume_at = 0.0
        self._backoff = MIN_BACKOFF_S
        self._source = make_source(self._on_assign, self._on_revoke)
        self._delivery: AtLeastOnce | ExactlyOnce
        if config.delivery.mode == "exactly_once":
            self._delivery = ExactlyOnce(
                self._source, cast(TransactionalSink, sink), metrics,
                config.delivery.transaction_stall_s,
            )  # fmt: skip
        else:
            self._delivery = AtLeastOnce(
                self._source, sink, metrics, clock, config.batch.commit_interval_ms / 1000
            )

    def run(self, stop: threading.Event) -> None:
        self.state.running = True
        lost = False
        try:
            while not stop.is_set():
                self.step()
        except DependencyLostError:
            lost = True
            raise
        finally:
            self.state.running = False
            self._shutdown(lost)
            self._close_traces()

    def step(self) -> None:
        """One iteration: poll, process, deliver, serve acknowledgements, refresh lag."""
        now = self._clock.monotonic()
        self.state.last_beat = now
        self._observe_connection()
        self._maybe_resume(now)
        self._wait_for_room()
        t0 = self._clock.monotonic()
        batch = self._source.poll_batch(self._cfg.batch.max_jobs, self._poll_wait(t0))
        self._last_poll = self._clock.monotonic()
        if batch:
            self._metrics.stages["poll"].observe(self._clock.monotonic() - t0)
        if self._overlap:
            self._step_overlapped(batch)
        elif batch:
            self._handle(batch)
        t1 = self._clock.monotonic()
        self._delivery.service(0)
        self._metrics.stages["commit"].observe(self._clock.monotonic() - t1)
        if self._open_traces:
            self._close_traces()
        if now >= self._next_lag:
            self._next_lag = now + LAG_INTERVAL_S
            self._refresh_lag()

    def _poll_wait(self, now: float) -> float:
        """How long this poll may wait for a batch to fill: ``batch.max_wait_ms`` counted from
        the previous poll. Jobs that arrived while the last batch was processed have waited
        already, so a busy loop takes them at once and an idle one waits the whole window."""
        max_wait = self._cfg.batch.max_wait_ms / 1000
        return min(max_wait, max(0.0, max_wait - (now - self._last_poll)))

    def _handle(self, batch: list[InMessage]) -> None:
        try:
            outcome = self._processor.finish(self._processor.begin([m.value for m in batch]))
        except TransportError as exc:
            self._retry_later(batch, exc)
            return
        self._deliver(batch, outcome)

    def _step_overlapped(self, batch: list[InMessage]) -> None:
        started: tuple[list[InMessage], P] | None = None
        if batch:
            try:
                started = (batch, self._processor.begin([m.value for m in batch]))
            except TransportError as exc:
                self._abandon_pending(batch, exc)
                return
        previous, self._pending = self._pending, started
        if previous is not None:
            self._finish(*previous)

    def _finish(self, batch: list[InMessage], pending: P) -> None:
        try:
            outcome = self._processor.finish(pending)
        except TransportError as exc:
            self._abandon_pending(batch, exc)
            return
        self._deliver(batch, outcome)

    def _abandon_pending(self, batch: list[InMessage], exc: TransportError) -> None:
        """Rewind `batch` and any batch started after it; both are re-read after the backoff."""
        later: list[InMessage] = []
        if self._pending is not None and self._pending[0] is not batch:
            later = self._pending[0]
            self._pending[1].cancel()
        self._pending = None
        self._retry_later(batch + later, exc)

    def _deliver(self, batch: list[InMessage], outcome: BatchOutcome) -> None:
        self._record(outcome, len(batch))
        trace = None if self._tracing is None else self._tracing.start(batch, outcome)
        t0 = self._clock.monotonic()
        try:
            self._delivery.deliver(batch, self._records(batch, outcome, trace))
        except TransactionAbortedError:
            return  # rewound to the batch's first offsets: the next poll re-reads it
        finally:
            self._metrics.stages["produce"].observe(self._clock.monotonic() - t0)
            if trace is not None:
                trace.delivered()
                self._open_traces.append(trace)
        self._backoff = MIN_BACKOFF_S

    def _close_traces(self) -> None:
        for trace in self._open_traces:
            trace.committed()
        self._open_traces.clear()

    def _records(
        self, batch: list[InMessage], outcome: BatchOutcome, trace: BatchTrace | None = None
    ) -> list[OutRecord]:
        topic = self._cfg.kafka.output_topic
        if trace is None:
            records = [OutRecord(topic, o.key, o.value, o.headers, batch[o.position])
                       for o in outcome.outputs]  # fmt: skip
        else:
            records = [OutRecord(topic, o.key, o.value, o.headers + trace.headers(o.position, o),
                                 batch[o.position]) for o in outcome.outputs]  # fmt: skip
        dlq = self._cfg.delivery.dead_letter_topic
        now_ms = self._clock.now_ms()
        for rej in outcome.rejected:
            msg = batch[rej.position]
            extra = [] if trace is None else trace.headers(rej.position, rej)
            if dlq:
                records.append(dead_letter(dlq, msg, rej, now_ms, extra))
                self._metrics.dead_letters.labels(rej.kind).inc()
            fields = None if trace is None else trace.log_fields(rej.position)
            log.warning("%s %s[%d]@%d (%s): %s", "dead-lettering" if dlq else "skipping",
                        msg.topic, msg.partition, msg.offset, rej.kind, rej.reason,
                        extra=fields)  # fmt: skip
        return records

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
        m.degraded_jobs.inc(outcome.degraded)
        m.kernel_cpu_seconds.inc(outcome.kernel_cpu_s)
        m.late_jobs.inc(outcome.late)
        for (model, shadow), overlaps in outcome.shadow_overlap.items():
            child = m.shadow_overlap.labels(model, shadow)
            for share in overlaps:
                child.observe(share)
        observe_many(m.e2e_latency, outcome.e2e_ms / 1000.0)

    def _retry_later(self, batch: list[InMessage], exc: TransportError) -> None:
        """Rewind the batch, pause consumption for a backoff, keep polling to stay in the group."""
        kind = "features_unavailable" if isinstance(exc, FeaturesUnavailableError) else "transport"
        self._metrics.errors.labels(kind).inc()
        self._source.seek(batch_starts(batch))
        self._paused = set(self.state.assigned)
        self._source.pause(sorted(self._paused))
        self._resume_at = self._clock.monotonic() + self._backoff
        log.warning("pausing consumption for %.1fs, batch will be retried: %s", self._backoff, exc)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
        self._metrics.paused.set(1)

    def _maybe_resume(self, now: float) -> None:
        if self._paused and now >= self._resume_at:
            self._source.resume(sorted(self._paused & self.state.assigned))
            self._paused.clear()
            self._metrics.paused.set(0)

    def _wait_for_room(self) -> None:
        """Backpressure: while too many outputs await acks, serve deliveries instead of polling."""
        limit = self._cfg.batch.max_in_flight_jobs
        while self._delivery.in_flight() >= limit:
            self._delivery.service(0.05)
            self._observe_connection()

    def _observe_connection(self) -> None:
        if self._watch is not None:
            self._watch.observe()
            self.state.kafka_up = self._watch.up

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
        if self._pending is not None and any(
            (m.topic, m.partition) in revoked for m in self._pending[0]
        ):
            batch, pending = self._pending  # finish it while the partitions are still ours
            self._pending = None
            self._finish(batch, pending)
        self._delivery.on_revoke(tps, self._cfg.delivery.shutdown_timeout_s / 2)
        self.state.assigned.difference_update(tps)
        self._paused.difference_update(tps)
        for topic, partition in tps:
            if self.state.lag.pop((topic, partition), None) is not None:
                self._metrics.consumer_lag.remove(topic, str(partition))
        self._metrics.assigned_partitions.set(len(self.state.assigned))

    def _shutdown(self, lost: bool = False) -> None:
        if lost:  # nothing can reach the broker: no flush, no commit (the restart re-reads)
            self._source.close()
            log.info("scoring loop stopped: the Kafka cluster is unreachable")
            return
        try:
            if self._pending is not None:
                batch, pending = self._pending
                self._pending = None
                self._finish(batch, pending)
            self._delivery.close(self._cfg.delivery.shutdown_timeout_s / 2)
        finally:
            self._source.close()
            log.info("scoring loop stopped")
