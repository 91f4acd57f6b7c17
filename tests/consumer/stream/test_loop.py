"""The scoring loop with in-memory Kafka fakes: commit discipline, poison, failures, revocation."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import BatchConfig, Config, DeliveryConfig, KafkaConfig
from consumer.errors import DeliveryError, DependencyLostError, FatalKafkaError
from consumer.metrics import Metrics
from consumer.stream.loop import ScoringLoop
from consumer.stream.records import RebalanceHook, Source, TopicPartition
from tests.consumer.fakes import (
    FakePending,
    FakeProcessor,
    FakeSink,
    FakeSource,
    FakeTransactionalSink,
)

P0: TopicPartition = ("jobs", 0)
P1: TopicPartition = ("jobs", 1)


def make_loop(
    records: dict[TopicPartition, list[bytes]],
    sink: FakeSink,
    max_jobs: int = 4,
    max_in_flight: int = 1000,
    mode: str = "at_least_once",
    dead_letter_topic: str = "",
    overlap_fetch: bool = False,
    commit_interval_ms: int = 0,
    max_wait_ms: int = 0,
) -> tuple[ScoringLoop[FakePending], FakeSource, Metrics, FakeProcessor]:
    config = Config(
        kafka=KafkaConfig(output_topic="ranked"),
        batch=BatchConfig(
            max_jobs=max_jobs,
            max_wait_ms=max_wait_ms,
            max_in_flight_jobs=max_in_flight,
            commit_interval_ms=commit_interval_ms,
        ),
        delivery=DeliveryConfig(mode=mode, dead_letter_topic=dead_letter_topic),
    )
    holder: list[FakeSource] = []

    def make_source(on_assign: RebalanceHook, on_revoke: RebalanceHook) -> Source:
        holder.append(FakeSource(records, on_assign, on_revoke))
        return holder[0]

    metrics = Metrics(CollectorRegistry())
    processor = FakeProcessor()
    loop = ScoringLoop(
        config, make_source, sink, processor, metrics, ManualClock(), overlap_fetch=overlap_fetch
    )
    return loop, holder[0], metrics, processor


def loop_clock(loop: ScoringLoop[FakePending]) -> ManualClock:
    clock = loop._clock  # the loop's injected clock
    assert isinstance(clock, ManualClock)
    return clock


def value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_a_busy_loop_does_not_wait_again_for_jobs_that_already_waited() -> None:
    loop, source, _, _ = make_loop({P0: [b"a"] * 3}, FakeSink(), max_jobs=1, max_wait_ms=20)
    clock = loop_clock(loop)
    loop.step()  # idle since the start: the whole window
    clock.advance(0.015)  # the batch took 15 ms: its successors waited that long meanwhile
    loop.step()
    clock.advance(0.050)  # past the window: take what is there at once
    loop.step()
    loop.step()  # the queue was drained just now: a full window again
    assert source.timeouts == pytest.approx([0.020, 0.005, 0.0, 0.020])


def test_every_record_scored_and_committed_as_next_offset_to_read() -> None:
    sink = FakeSink()
    loop, source, metrics, processor = make_loop({P0: [b"a", b"b", b"c"], P1: [b"d", b"e"]}, sink)
    for _ in range(3):
        loop.step()
    assert [p[2] for p in sink.produced] == [
        b"ranked:a",
        b"ranked:b",
        b"ranked:c",
        b"ranked:d",
        b"ranked:e",
    ]
    assert source.position(P0) == 3
    assert source.position(P1) == 2
    assert processor.batches == [4, 1]
    assert value(metrics, "stream_scorer_ranked_lists_produced_total") == 5


def test_nothing_committed_before_outputs_are_acknowledged() -> None:
    sink = FakeSink(auto_ack=False)
    loop, source, _, _ = make_loop({P0: [b"a", b"b"]}, sink)
    loop.step()
    loop.step()
    assert source.commits == []
    sink.release()
    loop.step()
    assert source.position(P0) == 2


def test_poison_records_are_counted_skipped_and_committed() -> None:
    sink = FakeSink()
    loop, source, metrics, _ = make_loop({P0: [b"a", b"bad1", b"b", b"bad2"]}, sink)
    loop.step()
    assert [p[2] for p in sink.produced] == [b"ranked:a", b"ranked:b"]
    assert source.position(P0) == 4
    assert value(metrics, "stream_scorer_errors_total", {"kind": "decode"}) == 2


def test_failed_delivery_stops_the_loop_and_is_never_committed_past() -> None:
    sink = FakeSink()
    sink.fail_tokens.add((P0, 1))
    loop, source, metrics, _ = make_loop({P0: [b"a", b"b", b"c"]}, sink)
    with pytest.raises(DeliveryError, match="broker said no"):
        loop.run(threading.Event())
    assert source.position(P0) == 1  # a was finished; b failed; c must not be committed
    assert source.closed
    assert value(metrics, "stream_scorer_errors_total", {"kind": "delivery"}) == 1


def test_revocation_flushes_and_commits_synchronously_before_release() -> None:
    sink = FakeSink(auto_ack=False)
    loop, source, _, _ = make_loop({P0: [b"a", b"b"], P1: [b"c"]}, sink)
    loop.step()
    assert source.commits == []
    source.on_revoke([P0])
    assert source.sync_commits == [{P0: 2}]
    assert loop.state.assigned == {P1}


def test_backpressure_waits_for_acks_instead_of_polling() -> None:
    sink = FakeSink(auto_ack=False)
    loop, source, _, _ = make_loop(
        {P0: [b"a", b"b", b"c", b"d", b"e"]}, sink, max_jobs=2, max_in_flight=2
    )
    loop.step()
    polls = source.polls
    timer = threading.Timer(0.2, sink.release)
    timer.start()
    loop.step()  # blocks in the in-flight wait until the timer releases the acks
    timer.join()
    assert source.polls == polls + 1
    assert source.position(P0) == 2


def test_graceful_stop_flushes_commits_and_closes() -> None:
    sink = FakeSink(auto_ack=False)
    loop, source, _, _ = make_loop({P0: [b"a"]}, sink)
    stop = threading.Event()
    loop.step()
    stop.set()
    loop.run(stop)
    assert source.sync_commits[-1] == {P0: 1}
    assert source.closed


def test_poison_records_go_to_the_dead_letter_topic_with_reasons_then_commit() -> None:
    sink = FakeSink()
    loop, source, metrics, _ = make_loop(
        {P0: [b"a", b"bad1", b"b"]}, sink, dead_letter_topic="jobs-dlq"
    )
    loop.step()
    topics = [(p[0], p[2]) for p in sink.produced]
    assert topics == [("ranked", b"ranked:a"), ("ranked", b"ranked:b"), ("jobs-dlq", b"bad1")]
    dlq_headers = sink.headers[2]
    assert dlq_headers["error.class"] == b"decode"
    assert dlq_headers["error.reason"] == b"not a job"
    assert (dlq_headers["source.topic"], dlq_headers["source.partition"]) == (b"jobs", b"0")
    assert dlq_headers["source.offset"] == b"1"
    assert source.position(P0) == 3
    assert value(metrics, "stream_scorer_dead_letters_total", {"reason": "decode"}) == 1


def test_dead_letter_write_must_be_acknowledged_before_commit() -> None:
    sink = FakeSink()
    sink.fail_tokens.add((P0, 0))  # the dead-letter write of the poison record fails
    loop, source, _, _ = make_loop({P0: [b"bad", b"a"]}, sink, dead_letter_topic="jobs-dlq")
    with pytest.raises(DeliveryError):
        loop.step()
    assert source.position(P0) is None


def test_unavailable_features_pause_rewind_and_retry_the_batch() -> None:
    sink = FakeSink()
    loop, source, metrics, processor = make_loop({P0: [b"a", b"b"]}, sink)
    processor.unavailable = 1
    clock = loop_clock(loop)
    loop.step()
    assert source.seeks == [{P0: 0}]
    assert source.paused == {P0}
    assert value(metrics, "stream_scorer_paused") == 1
    assert value(metrics, "stream_scorer_errors_total", {"kind": "features_unavailable"}) == 1
    assert sink.produced == []
    clock.advance(1.0)
    loop.step()
    assert source.paused == set()
    assert value(metrics, "stream_scorer_paused") == 0
    assert [p[2] for p in sink.produced] == [b"ranked:a", b"ranked:b"]
    assert source.position(P0) == 2


def test_exactly_once_commits_outputs_and_offsets_in_one_transaction() -> None:
    sink = FakeTransactionalSink()
    loop, source, metrics, _ = make_loop(
        {P0: [b"a", b"bad", b"b"], P1: [b"c"]}, sink, mode="exactly_once", dead_letter_topic="dlq"
    )
    loop.step()
    assert [c[2] for c in sink.committed] == [b"ranked:a", b"ranked:b", b"ranked:c", b"bad"]
    assert sink.offsets == [{P0: 3, P1: 1}]
    assert source.commits == []  # offsets travel only inside the transaction
    assert value(metrics, "stream_scorer_ranked_lists_produced_total") == 4


def test_exactly_once_abortable_error_aborts_and_rewinds() -> None:
    sink = FakeTransactionalSink()
    sink.fail_next_commit = "abortable"
    loop, source, metrics, _ = make_loop({P0: [b"a", b"b"]}, sink, mode="exactly_once")
    loop.step()
    assert sink.aborts == 1
    assert sink.committed == []
    assert source.seeks == [{P0: 0}]
    assert value(metrics, "stream_scorer_errors_total", {"kind": "transaction_aborted"}) == 1


def test_exactly_once_fencing_is_fatal() -> None:
    sink = FakeTransactionalSink()
    sink.fail_next_commit = "fenced"
    loop, source, _, _ = make_loop({P0: [b"a"]}, sink, mode="exactly_once")
    with pytest.raises(FatalKafkaError, match="fenced"):
        loop.run(threading.Event())
    assert sink.committed == []
    assert source.closed


def test_a_failed_asynchronous_commit_is_sent_again() -> None:
    sink = FakeSink()
    loop, source, metrics, _ = make_loop({P0: [b"a", b"b"]}, sink)
    loop.step()
    assert source.commits == [{P0: 2}]
    source.commit_failures.append({P0: 2})  # the broker restarted under the commit
    loop.step()
    assert source.commits == [{P0: 2}, {P0: 2}]
    assert value(metrics, "stream_scorer_errors_total", {"kind": "commit"}) == 1


def test_overlapped_loop_starts_the_next_batch_before_finishing_the_previous() -> None:
    sink = FakeSink()
    loop, source, _, processor = make_loop({P0: [b"a", b"b", b"c"]}, sink, max_jobs=2,
                                           overlap_fetch=True)  # fmt: skip
    loop.step()
    assert (processor.begun, processor.batches) == ([2], [])  # fetch started, not scored yet
    loop.step()
    assert (processor.begun, processor.batches) == ([2, 1], [2])  # N+1 begun, then N finished
    loop.step()  # nothing polled: the pending batch is finished at once
    assert processor.batches == [2, 1]
    assert [p[2] for p in sink.produced] == [b"ranked:a", b"ranked:b", b"ranked:c"]
    assert source.position(P0) == 3


def test_overlapped_failure_rewinds_the_failed_and_the_started_batch() -> None:
    sink = FakeSink()
    loop, source, _, processor = make_loop({P0: [b"a", b"b", b"c"]}, sink, max_jobs=2,
                                           overlap_fetch=True)  # fmt: skip
    loop.step()
    processor.unavailable = 1
    loop.step()  # finishing batch 1 fails while batch 2 is already started
    assert source.seeks == [{P0: 0}]
    assert source.paused == {P0}
    assert sink.produced == []


def test_overlapped_pending_batch_is_finished_before_its_partition_is_revoked() -> None:
    sink = FakeSink(auto_ack=False)
    loop, source, _, processor = make_loop({P0: [b"a"], P1: [b"b"]}, sink, overlap_fetch=True)
    loop.step()
    assert processor.batches == []
    source.on_revoke([P0])
    assert processor.batches == [2]
    assert source.sync_commits == [{P0: 1}]


def test_commits_are_spaced_by_the_commit_interval() -> None:
    sink = FakeSink()
    loop, source, _, _ = make_loop({P0: [b"a", b"b", b"c"]}, sink, max_jobs=1,
                                   commit_interval_ms=100)  # fmt: skip
    loop.step()
    assert source.commits == [{P0: 1}]
    loop.step()  # finished, but within the interval: not committed yet
    assert source.commits == [{P0: 1}]
    loop_clock(loop).advance(0.1)
    loop.step()
    assert source.commits == [{P0: 1}, {P0: 3}]


class ScriptedWatch:
    """A connection watch whose verdicts a test sets; raises once told the cluster is gone."""

    def __init__(self) -> None:
        self.up = True
        self.gone = False
        self.observed = 0

    def observe(self) -> None:
        self.observed += 1
        if self.gone:
            raise DependencyLostError("the Kafka cluster at b:9092", 301.0, "down")


def test_the_loop_reports_the_watch_verdict_and_stops_without_committing_when_lost() -> None:
    sink = FakeSink(auto_ack=False)
    loop, source, _, _ = make_loop({P0: [b"a", b"b"]}, sink)
    watch = ScriptedWatch()
    loop._watch = watch
    loop.step()
    assert loop.state.kafka_up
    watch.up = False
    loop.step()
    assert not loop.state.kafka_up
    watch.gone = True
    with pytest.raises(DependencyLostError):
        loop.run(threading.Event())
    assert source.closed
    assert source.commits == source.sync_commits == []  # nothing can reach the broker
    assert not loop.state.running


def test_the_watch_is_consulted_while_waiting_for_acknowledgements() -> None:
    sink = FakeSink(auto_ack=False)
    loop, _, _, _ = make_loop({P0: [b"a", b"b", b"c"]}, sink, max_jobs=2, max_in_flight=2)
    watch = ScriptedWatch()
    loop._watch = watch
    loop.step()  # two outputs unacknowledged: the next step waits for room
    watch.gone = True
    with pytest.raises(DependencyLostError):
        loop.step()
