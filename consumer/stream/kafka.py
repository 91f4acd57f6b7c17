"""The Kafka edge: librdkafka objects become frozen records here and nowhere past it.

`KafkaSource` wraps the consumer (subscription, rebalance callbacks, batched polls, commits,
watermarks); `KafkaSink` wraps the producer (produce with a delivery token, delivery reports).
librdkafka callbacks only record facts (in queues, `ClientFacts` and `KafkaHealth`) and never
raise; the loop acts on its own stack. librdkafka's own log lines go to the rate-limited
``consumer.librdkafka`` logger (`consumer.stream.kafka_health.librdkafka_logger`, its FAIL lines
demoted to DEBUG). Each client's errors reach both its `ClientFacts` (is the cluster reachable?
`consumer.stream.connection`) and the worker's `KafkaHealth` (security failures logged once and
bounded in time, other errors rate-limited; `consumer.stream.kafka_health`). A property
librdkafka refuses when the client is created is a `ConfigError` naming the table.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from consumer.clock import SystemClock
from consumer.errors import (
    ConfigError,
    DeliveryError,
    FatalKafkaError,
    TransactionAbortedError,
    TransportError,
)
from consumer.stream.connection import STATS_INTERVAL_MS, ClientFacts
from consumer.stream.kafka_health import (
    KafkaHealth,
    event_of,
    identity_of,
    librdkafka_logger,
    security_kind,
)
from consumer.stream.records import Delivery, InMessage, RebalanceHook, Token
from consumer.stream.records import TopicPartition as TP

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 1.0
INIT_SLICE_S = 5.0


def default_health(properties: Mapping[str, str]) -> KafkaHealth:
    """A health record that logs and never exits: for clients built without the service."""
    return KafkaHealth(SystemClock(), None, 0, identity_of(dict(properties)))


def _to_tps(partitions: Sequence[TopicPartition]) -> list[TP]:
    return [(p.topic, p.partition) for p in partitions]


def _observed(conf: dict[str, Any], facts: ClientFacts, health: KafkaHealth) -> dict[str, Any]:
    """``conf`` with the callbacks that record `facts` and `health` (never raising)."""

    def on_error(err: KafkaError) -> None:
        health.on_error(err)
        try:
            facts.error(err.name(), err.str())
        except Exception:  # a callback must never raise into librdkafka
            return

    return {**conf, "error_cb": on_error, "stats_cb": facts.stats}


def _create(kind: type[Consumer] | type[Producer], conf: dict[str, Any], table: str) -> Any:
    """The client, or a `ConfigError` naming ``table`` for a property librdkafka refuses."""
    try:
        return kind(conf, logger=librdkafka_logger())
    except KafkaException as exc:
        raise ConfigError(f"librdkafka refused a property: {exc.args[0].str()}", key=table) from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"librdkafka refused a property: {exc}", key=table) from exc


class KafkaSource:
    """A subscribed consumer with manual commits, handing out `InMessage` batches."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topic: str,
        extra: Mapping[str, str],
        on_assign: RebalanceHook,
        on_revoke: RebalanceHook,
        health: KafkaHealth | None = None,
        facts: ClientFacts | None = None,
    ) -> None:
        self._topic = topic
        self._health = health or default_health(extra)
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 50,
            "statistics.interval.ms": STATS_INTERVAL_MS,
        }
        conf.update(extra)
        conf["on_commit"] = self._committed
        self._commit_failures: deque[dict[TP, int]] = deque()
        self.facts = facts or ClientFacts("consumer")
        self._consumer: Consumer = _create(
            Consumer, _observed(conf, self.facts, self._health), "kafka.consumer"
        )
        self._hooks = (on_assign, on_revoke)
        self._consumer.subscribe(
            [topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    def _committed(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        # Only records the fact: the loop re-offers failed positions on its own stack.
        failed = {(p.topic, p.partition): p.offset for p in partitions if err or p.error}
        if failed:
            self._commit_failures.append(failed)

    def take_commit_failures(self) -> list[dict[TP, int]]:
        """Positions whose asynchronous commit failed since the last call."""
        out = list(self._commit_failures)
        self._commit_failures.clear()
        return out

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._health.recovered()  # the group coordinator answered: we are authenticated
        self.facts.contact()
        self._hooks[0](_to_tps(partitions))

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Runs inside poll()/consume() on the loop's own thread, so the hook may flush and commit.
        try:
            self._hooks[1](_to_tps(partitions))
        except Exception:  # a callback must never raise into librdkafka
            log.exception("revocation handling failed")

    def poll_batch(self, max_messages: int, timeout_s: float) -> list[InMessage]:
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        out: list[InMessage] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                self._on_error(err)
                continue
            out.append(_convert(msg))
        if out:
            self._health.recovered()
        self._health.check()  # raises FatalKafkaError once a security failure outlasts its bound
        if self._health.wants_probe():
            self._probe()
        return out

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise TransportError(f"fatal consumer error: {err.str()}")
        if err.code() == KafkaError._PARTITION_EOF:
            return  # enable.partition.eof: an event, not an error
        self._health.report(event_of(err))  # logged once per episode or rate-limited

    def _probe(self) -> None:
        """While failing: does the broker answer a metadata request now?"""
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=PROBE_TIMEOUT_S)
        except KafkaException:
            return
        topic = metadata.topics.get(self._topic)
        if topic is not None and topic.error is None:
            self._health.recovered()

    def seek(self, positions: Mapping[TP, int]) -> None:
        """Rewind (or move) partitions to the given next offsets to read."""
        for (topic, partition), offset in positions.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # e.g. revoked meanwhile: nothing to rewind
                log.warning("cannot seek %s[%d] to %d: %s", topic, partition, offset, exc)

    def pause(self, tps: Sequence[TP]) -> None:
        self._consumer.pause([TopicPartition(t, p) for t, p in tps])

    def resume(self, tps: Sequence[TP]) -> None:
        self._consumer.resume([TopicPartition(t, p) for t, p in tps])

    def group_metadata(self) -> object:
        return self._consumer.consumer_group_metadata()

    def commit(self, positions: Mapping[TP, int], asynchronous: bool = True) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise TransportError(f"commit failed: {exc}") from exc

    def committed(self, tps: Sequence[TP], timeout_s: float = 10.0) -> dict[TP, int]:
        result = self._consumer.committed([TopicPartition(t, p) for t, p in tps], timeout_s)
        return {(r.topic, r.partition): r.offset for r in result}

    def lag(self, tps: Sequence[TP]) -> dict[TP, int]:
        """High watermark minus position, from cached fetch metadata (no broker round trip)."""
        out: dict[TP, int] = {}
        positions = self._consumer.position([TopicPartition(t, p) for t, p in tps])
        for tp in positions:
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0 and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        return out

    def close(self) -> None:
        self._consumer.close()


def _convert(msg: Message) -> InMessage:
    _kind, ts = msg.timestamp()
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise TransportError("the consumer returned a record without topic, partition or offset")
    return InMessage(
        topic=topic,
        partition=partition,
        offset=offset,
        key=msg.key(),
        value=msg.value(),
        timestamp_ms=ts,
        headers=_headers(msg),
    )


def _headers(msg: Message) -> tuple[tuple[str, bytes | None], ...]:
    raw = msg.headers()
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in items)


class KafkaSink:
    """An idempotent producer whose delivery reports are queued for the loop to read."""

    def __init__(
        self,
        bootstrap: str,
        extra: Mapping[str, str],
        health: KafkaHealth | None = None,
        facts: ClientFacts | None = None,
    ) -> None:
        self._health = health or default_health(extra)
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 200_000,
        }
        conf.update(extra)
        self.facts = facts or ClientFacts("producer")
        self._producer: Producer = _create(
            Producer, _observed(conf, self.facts, self._health), "kafka.producer"
        )
        self._deliveries: deque[Delivery] = deque()

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        token: Token,
    ) -> None:
        wire_headers: list[tuple[str, str | bytes | None]] = list(headers)

        def report(err: KafkaError | None, _msg: Message) -> None:
            self._deliveries.append(Delivery(token, None if err is None else _reason(err, topic)))

        try:
            produce_waiting(self._producer, topic, value, key, report, wire_headers)
        except KafkaException as exc:  # e.g. the topic is known to refuse us: fail like a delivery
            raise DeliveryError(f"cannot produce: {_reason(exc.args[0], topic)}") from exc

    def poll(self, timeout_s: float = 0.0) -> None:
        try:
            self._producer.poll(timeout_s)
        except KafkaException as exc:  # librdkafka raises a fatal producer error from poll
            raise _fatal(exc) from exc

    def take_deliveries(self) -> list[Delivery]:
        out = list(self._deliveries)
        self._deliveries.clear()
        return out

    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding deliveries; returns how many are still not reported."""
        try:
            remaining: int = self._producer.flush(timeout_s)
        except KafkaException as exc:
            raise _fatal(exc) from exc
        return remaining

    def init_transactions(self, timeout_s: float = 30.0) -> None:
        """Register the transactional id, fencing any older instance that used it.

        Waits in slices of `INIT_SLICE_S` (a timed-out call resumes where it stopped): between
        slices the client's error reports are served, so a broker that refuses us ends the wait
        once `KafkaHealth`'s bound passes instead of after every retry of a 30 s call.
        """
        slice_s = min(timeout_s, INIT_SLICE_S)
        attempts = max(5, round(5 * timeout_s / slice_s))  # the same total wait as before
        self._transactional(lambda: self._producer.init_transactions(slice_s), attempts)

    def begin(self) -> None:
        self._transactional(self._producer.begin_transaction)

    def send_offsets(
        self, positions: Mapping[TP, int], group_metadata: object, timeout_s: float = 30.0
    ) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        self._transactional(
            lambda: self._producer.send_offsets_to_transaction(offsets, group_metadata, timeout_s)
        )

    def commit_transaction(self, timeout_s: float = 30.0) -> None:
        self._transactional(lambda: self._producer.commit_transaction(timeout_s))

    def abort_transaction(self, timeout_s: float = 30.0) -> None:
        self._transactional(lambda: self._producer.abort_transaction(timeout_s))

    def _transactional(self, call: Callable[[], object], attempts: int = 5) -> None:
        """Run a transactional API call: retry retriable errors, classify the others."""
        for attempt in range(attempts):
            try:
                call()
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.fatal():
                    raise FatalKafkaError(f"fatal producer error: {err.str()}") from exc
                if security_kind(err.code()) is not None:  # retrying cannot help: exit, loudly
                    raise FatalKafkaError(f"transactional call refused: {_reason(err)}") from exc
                if err.txn_requires_abort():
                    raise TransactionAbortedError(f"transaction must abort: {err.str()}") from exc
                if not err.retriable() or attempt == attempts - 1:
                    raise TransportError(f"transactional call failed: {err.str()}") from exc
                self.poll(0)  # serve error reports: the health may know why, and end the wait
                self._health.check()
                level = logging.DEBUG if self._health.failing else logging.WARNING
                log.log(level, "retrying transactional call: %s", err.str())

    def __len__(self) -> int:
        return len(self._producer)


def _fatal(exc: KafkaException) -> FatalKafkaError:
    err: KafkaError = exc.args[0]
    return FatalKafkaError(f"the producer cannot continue: {_reason(err)}")


def _reason(err: KafkaError, topic: str = "") -> str:
    """librdkafka's error text, with what to grant when a write was not authorized."""
    code, text = err.code(), err.str()
    if code == KafkaError.TOPIC_AUTHORIZATION_FAILED and topic:
        return (
            f"not authorized to write to topic {topic!r} ({err.name()}): grant WRITE on it to "
            "the scorer's principal (`python -m consumer.security.acls`)"
        )
    if code == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
        # An idempotent producer needs IDEMPOTENT_WRITE on the cluster, which Kafka grants to
        # any principal with WRITE on some topic: no WRITE anywhere fails here, before any topic.
        return (
            f"not authorized to write ({err.name()}: {text}): grant WRITE on the output topic "
            "to the scorer's principal (`python -m consumer.security.acls`)"
        )
    if code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        return f"{text}: grant WRITE on the transactional id (`python -m consumer.security.acls`)"
    return str(text)


def produce_waiting(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> None:
    """``producer.produce``; while librdkafka's local queue is full, serve deliveries and retry."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)
