"""A real Prometheus scrapes the scorer's real side server and evaluates the real rule files.

Proves end to end that the series names and labels the recording rules, the alerts and the
dashboard select on are what the service exposes on /metrics: each recording rule returns
samples with the labels it aggregates by, every dashboard query returns series carrying the
labels its legend prints, and every rule evaluates without error.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumer.clock import SystemClock
from consumer.metrics import Metrics
from consumer.ops import build_app, start_server
from consumer.stream.loop import LoopState
from tests.deploy.contract import SCRAPE_JOB, dashboard_targets, feed, load_dashboard, rules
from tests.deploy.prometheus_server import PrometheusServer

pytestmark = pytest.mark.slow

WAIT_S = 30.0
FIRST_BY = re.compile(r"\bby \(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@contextlib.asynccontextmanager
async def scorer_side_server(registry: CollectorRegistry) -> AsyncIterator[int]:
    """The scorer's /metrics, /healthz, /readyz app on loopback; yields its port."""
    clock = SystemClock()
    state = LoopState()
    state.running = True
    state.last_beat = clock.monotonic()
    runner, port = await start_server(
        build_app(registry, state, clock, lambda: True), "127.0.0.1", 0
    )
    try:
        yield port
    finally:
        await runner.cleanup()


async def keep_feeding(registry: CollectorRegistry) -> None:
    step = 1
    while True:
        feed(registry, step)
        step += 1
        await asyncio.sleep(0.25)


async def eventually(check: Callable[[], Awaitable[list[str]]], deadline: float) -> list[str]:
    """Re-run `check` (which returns its failures) until it has none or the deadline passes."""
    while True:
        failures = await check()
        if not failures or time.monotonic() >= deadline:
            return failures
        await asyncio.sleep(0.5)


def dashboard_expr(expr: str) -> str:
    """A dashboard query as Grafana would send it with every variable at "All"."""
    return expr.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")


def expected_labels(expr: str) -> set[str]:
    match = FIRST_BY.search(expr)
    return {s.strip() for s in match.group(1).split(",")} - {"le", ""} if match else set()


async def test_rules_and_dashboard_over_a_live_scrape(prometheus_bin: str, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    feed(registry)
    feeder = asyncio.create_task(keep_feeding(registry))
    try:
        async with (
            scorer_side_server(registry) as port,
            PrometheusServer(prometheus_bin, tmp_path, [f"127.0.0.1:{port}"]) as prom,
        ):
            deadline = time.monotonic() + WAIT_S
            await _assert_predictions_rate(prom, deadline)
            await _assert_target_up(prom, port)
            assert await eventually(lambda: _recording_failures(prom), deadline) == []
            assert await eventually(lambda: _dashboard_failures(prom), deadline) == []
            assert await eventually(lambda: _rule_health_failures(prom), deadline) == []
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder


async def _assert_predictions_rate(prom: PrometheusServer, deadline: float) -> None:
    async def check() -> list[str]:
        result = await prom.query("stream_scorer:predictions:rate1m")
        return [] if result else ["stream_scorer:predictions:rate1m has no sample yet"]

    assert await eventually(check, deadline) == [], prom.log()
    (sample,) = await prom.query("stream_scorer:predictions:rate1m")
    assert sample["metric"] == {
        "__name__": "stream_scorer:predictions:rate1m",
        "job": SCRAPE_JOB,
        "model": "demo-lr",
    }
    assert float(sample["value"][1]) > 0


async def _assert_target_up(prom: PrometheusServer, port: int) -> None:
    (up,) = await prom.query(f'up{{job="{SCRAPE_JOB}"}}')
    assert up["metric"]["instance"] == f"127.0.0.1:{port}"
    assert up["value"][1] == "1"


async def _recording_failures(prom: PrometheusServer) -> list[str]:
    failures = []
    for rule in rules():
        if "record" not in rule:
            continue
        result = await prom.query(rule["record"])
        if not result:
            failures.append(f"{rule['record']}: no sample")
        for sample in result:
            missing = expected_labels(rule["expr"]) - set(sample["metric"])
            if missing:
                failures.append(f"{rule['record']}: no label(s) {sorted(missing)}")
    return failures


async def _dashboard_failures(prom: PrometheusServer) -> list[str]:
    failures = []
    for target in dashboard_targets(load_dashboard()):
        expr = dashboard_expr(target["expr"])
        result = await prom.query(expr)
        if not result:
            failures.append(f"{expr}: empty")
        wanted = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        for sample in result:
            missing = wanted - set(sample["metric"])
            if missing:
                failures.append(f"{expr}: no label(s) {sorted(missing)}")
    return failures


async def _rule_health_failures(prom: PrometheusServer) -> list[str]:
    data: dict[str, Any] = await prom.api("rules")
    evaluated = [rule for group in data["groups"] for rule in group["rules"]]
    names = {str(r.get("record") or r.get("alert")) for r in rules()}
    failures = sorted(names - {str(r["name"]) for r in evaluated})
    failures += [
        f"{r['name']}: {r['health']} {r.get('lastError', '')}"
        for r in evaluated
        if r["health"] != "ok"
    ]
    return failures
