"""The side server: /metrics in Prometheus text, /healthz and /readyz reflecting the loop."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.metrics import Metrics
from consumer.ops import build_app
from consumer.stream.loop import LoopState


async def test_endpoints_follow_loop_state() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.predictions.labels("m").inc(700)
    state, clock = LoopState(), ManualClock()
    app = build_app(metrics.registry, state, clock, lambda: True, stale_after_s=5)
    async with TestClient(TestServer(app)) as client:
        body = await (await client.get("/metrics")).text()
        assert 'stream_scorer_predictions_total{model="m"} 700.0' in body
        assert (await client.get("/healthz")).status == 503  # not running yet
        assert (await client.get("/readyz")).status == 503  # nothing assigned
        state.running, state.last_beat = True, clock.monotonic()
        state.assigned.add(("jobs", 0))
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert (await ready.json())["assigned_partitions"] == 1
        clock.advance(6)  # the loop stopped iterating
        stalled = await client.get("/healthz")
        assert stalled.status == 503
        assert (await stalled.json())["status"] == "stalled"


async def test_readiness_fails_while_the_kafka_cluster_is_unreachable() -> None:
    state, clock = LoopState(), ManualClock()
    state.running, state.last_beat = True, clock.monotonic()
    state.assigned.add(("jobs", 0))  # librdkafka keeps the assignment while the broker is gone
    app = build_app(Metrics(CollectorRegistry()).registry, state, clock, lambda: True)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/readyz")).status == 200
        state.kafka_up = False
        lost = await client.get("/readyz")
        assert lost.status == 503
        assert (await lost.json())["kafka_reachable"] is False
        assert (await client.get("/healthz")).status == 200  # alive: restarting would not help
