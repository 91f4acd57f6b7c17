"""The Kafka connection watch: facts from librdkafka's callbacks, judged on the loop's stack."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.errors import DependencyLostError
from consumer.metrics import Metrics
from consumer.stream.connection import BrokerWatch, ClientFacts, reachable_from_stats
from consumer.telemetry.health import DependencyState

# Shapes of librdkafka statistics seen on the real broker (consumer, group member).
HEALTHY = {
    "brokers": {
        "127.0.0.1:51691/1": {"state": "UP", "nodeid": 1, "source": "learned"},
        "GroupCoordinator": {"state": "UP", "nodeid": -1, "source": "logical"},
    },
    "cgrp": {"state": "up", "join_state": "steady"},
}
BROKER_GONE = {
    "brokers": {
        "127.0.0.1:51691/bootstrap": {"state": "INIT", "nodeid": -1, "source": "configured"},
        "GroupCoordinator": {"state": "TRY_CONNECT", "nodeid": -1, "source": "logical"},
    },
    "cgrp": {"state": "query-coord", "join_state": "init"},
}
NO_COORDINATOR = {**HEALTHY, "cgrp": {"state": "wait-coord"}}
BOOTSTRAP_ONLY = {  # reachable bootstrap, unreachable advertised listener: nothing works
    "brokers": {"b/bootstrap": {"state": "UP", "nodeid": -1, "source": "configured"}},
}


@pytest.mark.parametrize(
    ("stats", "verdict"),
    [
        (HEALTHY, True),
        (BROKER_GONE, False),
        (NO_COORDINATOR, False),
        (BOOTSTRAP_ONLY, False),
        ({"brokers": HEALTHY["brokers"]}, True),  # a producer: no group
        ({"name": "x"}, None),
    ],
)
def test_reachability_from_statistics(stats: dict[str, object], verdict: bool | None) -> None:
    assert reachable_from_stats(stats) is verdict


def test_facts_keep_the_latest_verdict_and_count_errors() -> None:
    facts = ClientFacts("consumer")
    facts.stats(json.dumps(HEALTHY))
    facts.error("_TRANSPORT", "connect failed")
    facts.error("_ALL_BROKERS_DOWN", "1/1 brokers are down")
    facts.stats("not json")  # no evidence, never raises
    seen = facts.take()
    assert seen.reachable is False
    assert seen.errors == {"_TRANSPORT": 1, "_ALL_BROKERS_DOWN": 1}
    assert seen.last_error == "_ALL_BROKERS_DOWN: 1/1 brokers are down"
    assert facts.take().reachable is None  # taken
    facts.contact()
    assert facts.take().reachable is True


def make_watch(exit_after_s: float = 60) -> tuple[BrokerWatch, ClientFacts, ClientFacts,
                                                   Metrics, ManualClock]:  # fmt: skip
    metrics, clock = Metrics(CollectorRegistry()), ManualClock()
    consumer, producer = ClientFacts("consumer"), ClientFacts("producer")
    state = DependencyState("kafka", metrics, clock)
    watch = BrokerWatch(consumer, producer, state, metrics, clock, exit_after_s, "b:9092")
    return watch, consumer, producer, metrics, clock


def sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_loss_and_recovery_move_the_state_and_the_metrics() -> None:
    watch, consumer, producer, metrics, clock = make_watch()
    watch.observe()
    assert not watch.up  # nothing heard yet
    consumer.stats(json.dumps(HEALTHY))
    watch.observe()
    assert watch.up
    assert sample(metrics, "stream_scorer_dependency_up", {"dependency": "kafka"}) == 1
    clock.advance(5)
    consumer.error("_ALL_BROKERS_DOWN", "1/1 brokers are down")
    producer.error("_TRANSPORT", "connect failed")
    producer.error("_TRANSPORT", "connect failed")
    watch.observe()
    assert not watch.up
    clock.advance(7)  # the last answer was the statistics report 12 s ago
    assert sample(metrics, "stream_scorer_dependency_down_seconds", {"dependency": "kafka"}) == 12
    errors = "stream_scorer_kafka_client_errors_total"
    assert sample(metrics, errors, {"client": "producer", "code": "_TRANSPORT"}) == 2
    assert sample(metrics, errors, {"client": "consumer", "code": "_ALL_BROKERS_DOWN"}) == 1
    consumer.stats(json.dumps(HEALTHY))
    watch.observe()
    assert watch.up


def test_producer_errors_alone_do_not_mark_the_cluster_lost() -> None:
    watch, consumer, producer, _, _ = make_watch()
    consumer.contact()
    producer.error("_ALL_BROKERS_DOWN", "an idle producer's connection was closed")
    watch.observe()
    assert watch.up


def iterate_while_down(watch: BrokerWatch, consumer: ClientFacts, clock: ManualClock) -> None:
    for _ in range(100_000):  # a loop iteration every 10 ms, errors all along
        consumer.error("_TRANSPORT", "Connect to ipv4#127.0.0.1:9092 failed")
        watch.observe()
        clock.advance(0.01)


def test_an_unreachable_cluster_is_logged_once_per_interval_then_the_watch_gives_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch, consumer, _, _, clock = make_watch(exit_after_s=120)
    consumer.contact()
    watch.observe()
    with caplog.at_level(logging.INFO, "consumer.stream.connection"):
        consumer.error("_ALL_BROKERS_DOWN", "1/1 brokers are down")
        with pytest.raises(DependencyLostError) as lost:
            iterate_while_down(watch, consumer, clock)
    assert 120 < lost.value.down_s < 121
    assert "the Kafka cluster at b:9092" in str(lost.value)
    lines = [r.getMessage() for r in caplog.records]
    # the loss, one summary per 30 s (at 30, 60 and 90 s) and the exit: not one per error
    assert len(lines) == 5, lines
    assert lines[0].startswith("lost the Kafka cluster at b:9092 (_ALL_BROKERS_DOWN: 1/1 brokers")
    assert "3000 client errors since the last report" in lines[1]
    assert lines[-1].startswith("the Kafka cluster at b:9092 was unreachable for 120 s")


def test_a_bound_of_zero_never_gives_up() -> None:
    watch, consumer, _, _, clock = make_watch(exit_after_s=0)
    consumer.error("_ALL_BROKERS_DOWN", "down")
    for _ in range(100):
        clock.advance(60)
        watch.observe()
    assert not watch.up
