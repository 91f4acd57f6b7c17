"""A lost Kafka cluster is visible on the real broker: readiness fails, the dependency metrics
move, librdkafka's retries are not a log flood, the scorer recovers when the broker returns,
and past ``kafka.unreachable_exit_s`` it stops with `DependencyLostError` (exit code 69)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from consumer.devtools.demo_data import write_demo_data
from consumer.devtools.local_kafka import LocalKafka
from consumer.errors import DependencyLostError
from tests.consumer.kafka_support import (
    Topics,
    make_jobs,
    new_service,
    produce,
    sample,
    scorer_config,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.faults]
EXIT_AFTER_S = 20


def readiness(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_broker_loss_is_visible_recovers_and_is_bounded(
    local_kafka: LocalKafka,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = write_demo_data(tmp_path / "data", 500, 50, seed=4, hash_bits=12)
    topics = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    local_kafka.create_topics([topics.jobs, topics.ranked], 2)
    produce(local_kafka.bootstrap, topics.jobs, make_jobs(data, 40))
    config = scorer_config(data, local_kafka.bootstrap, topics)
    config = replace(
        config,
        kafka=replace(
            config.kafka,
            unreachable_exit_s=EXIT_AFTER_S,
            consumer={**config.kafka.consumer, "statistics.interval.ms": "500"},
        ),
        server=replace(config.server, enabled=True, port=0),
    )
    service, registry = new_service(config)
    port = service.start_http()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            service.run(threading.Event())
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    up = {"dependency": "kafka"}

    def kafka_up() -> float:
        return sample(registry, "stream_scorer_dependency_up", up)

    wait_until(lambda: sample(registry, "stream_scorer_ranked_lists_produced_total") >= 40)
    wait_until(lambda: readiness(port)[0] == 200 and kafka_up() == 1, 30)

    with caplog.at_level(logging.INFO):
        # 1. lost: readiness fails, the metrics move, the log stays quiet
        local_kafka.stop()
        lost_at = time.monotonic()
        wait_until(lambda: readiness(port)[0] == 503, 15)
        assert readiness(port)[1]["kafka_reachable"] is False
        assert kafka_up() == 0
        time.sleep(6)
        assert sample(registry, "stream_scorer_dependency_down_seconds", up) >= 5
        down_s = time.monotonic() - lost_at
        errors = sample(registry, "stream_scorer_kafka_client_errors_total",
                        {"client": "consumer", "code": "_TRANSPORT"})  # fmt: skip
        assert errors > 0
        noisy = [r for r in caplog.records if r.name == "consumer.stream.kafka"]
        assert len(noisy) <= 12, [r.getMessage() for r in noisy]  # ~22 a second before
        assert any(r.getMessage().startswith("lost the Kafka cluster") for r in caplog.records)

        # 2. back: ready again, the state up
        local_kafka.start()
        wait_until(lambda: readiness(port)[0] == 200 and kafka_up() == 1, 60)
        assert sample(registry, "stream_scorer_dependency_down_seconds", up) == 0

        # 3. lost for good: the run ends with DependencyLostError past the bound
        local_kafka.stop()
        lost_at = time.monotonic()
        thread.join(EXIT_AFTER_S + 30)
        gave_up_after = time.monotonic() - lost_at
    assert not thread.is_alive(), "the scorer kept running without a cluster"
    assert len(failures) == 1
    assert isinstance(failures[0], DependencyLostError)
    assert failures[0].down_s > EXIT_AFTER_S
    assert EXIT_AFTER_S - 3 < gave_up_after < EXIT_AFTER_S + 15
    print(
        f"lost -> 503 and metrics within the first check; {down_s:.0f} s down logged "
        f"{len(noisy)} client lines; gave up {gave_up_after:.1f} s after the second loss"
    )
