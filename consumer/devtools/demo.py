"""`stream-scorer demo`: a demo stream scored end to end on a real broker, then a summary.

Steps: generate a model and feature files; start (or reuse, with KAFKA_BOOTSTRAP) a broker; create
topics; produce a backlog of jobs; run the scorer with a live progress line until the backlog is
scored (throughput); stream more jobs open-loop at a quarter of that rate (latency); read every
ranked list back, check none is missing, print a summary and a few lists; stop what was started.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from consumer.clock import SystemClock
from consumer.config import Config, load_config
from consumer.devtools.demo_data import MODEL, write_demo_data
from consumer.devtools.generator import POOL_LISTS, JobShape, generate_jobs, produce_jobs
from consumer.devtools.local_kafka import create_topics, default_cache_dir, kafka_cluster
from consumer.devtools.ranked_reader import read_ranked
from consumer.service import Service
from schemas.records import RankedList
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder

# The generator shares this process (and the broker this machine), so latency is measured at a
# quarter of the backlog rate: the scorer's share of the CPU, not the generator's, sets it.
LATENCY_LOAD = 0.25


@dataclass(frozen=True, slots=True)
class DemoOptions:
    jobs: int = 20_000
    latency_seconds: float = 5.0
    seed: int = 7
    items: int = 100_000
    users: int = 50_000
    partitions: int = 4
    timeout_s: float = 600.0


def scorer_config(work: Path, bootstrap: str, topics: tuple[str, str], group: str) -> Config:
    base = load_config({}, base_dir=str(work))
    return replace(
        base,
        kafka=replace(
            base.kafka,
            bootstrap_servers=bootstrap,
            input_topic=topics[0],
            output_topic=topics[1],
            group_id=group,
        ),
        models=replace(base.models, directory="models"),
        features=replace(
            base.features, users_file="features/users.csv", items_file="features/items.csv"
        ),
        server=replace(base.server, port=0),
    )


class _Progress:
    """Reads the scorer's own metrics for the live line and the summary."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self._registry.get_sample_value(name, labels or {}) or 0.0

    def produced(self) -> int:
        return int(self.value("stream_scorer_ranked_lists_produced_total"))

    def predictions(self) -> float:
        return self.value("stream_scorer_predictions_total", {"model": MODEL})


def _wait_scored(progress: _Progress, target: int, service: Service, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = (time.monotonic(), progress.produced(), progress.predictions())
    while progress.produced() < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {progress.produced()} of {target} jobs scored in time")
        time.sleep(1.0)
        now = (time.monotonic(), progress.produced(), progress.predictions())
        dt = now[0] - last[0]
        lag = sum(service.state.lag.values())
        print(
            f"\r  scored {now[1]:>8,}/{target:,} | {(now[1] - last[1]) / dt:>8,.0f} jobs/s | "
            f"{(now[2] - last[2]) / dt:>12,.0f} predictions/s | lag {lag:>7,}",
            end="",
            flush=True,
        )
        last = now
    print()


def _wait_assigned(service: Service, timeout_s: float) -> None:
    """Throughput is timed from the moment the group assigned partitions to the scorer."""
    deadline = time.monotonic() + timeout_s
    while not service.state.assigned:
        if time.monotonic() > deadline:
            raise RuntimeError("the scorer was never assigned partitions")
        time.sleep(0.01)


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def run_demo(options: DemoOptions, environ: Mapping[str, str]) -> int:
    cache = default_cache_dir(environ)
    work = cache / "demo"
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"[1/5] generating a model, {options.items:,} items and {options.users:,} users in {work}"
    )
    data = write_demo_data(work, options.items, options.users, options.seed)
    user_ids, item_ids = data.user_ids, data.item_ids
    print(
        "[2/5] starting the Kafka broker"
        + (" (KAFKA_BOOTSTRAP)" if "KAFKA_BOOTSTRAP" in environ else " (local, KRaft)")
    )
    with kafka_cluster(cache, environ.get("KAFKA_BOOTSTRAP")) as bootstrap:
        run_id = uuid.uuid4().hex[:8]
        topics = (f"demo-jobs-{run_id}", f"demo-ranked-{run_id}")
        create_topics(bootstrap, list(topics), options.partitions)
        return _run(options, work, bootstrap, topics, run_id, user_ids, item_ids)


class _JobStream:
    """Produces demo jobs to the input topic, as a backlog or paced open loop."""

    def __init__(self, bootstrap: str, topic: str, options: DemoOptions,
                 user_ids: np.ndarray, item_ids: np.ndarray) -> None:  # fmt: skip
        conf = {"bootstrap.servers": bootstrap, "linger.ms": 10, "compression.type": "lz4",
                "enable.idempotence": True}  # fmt: skip
        self._producer = Producer(conf)
        self._topic = topic
        self._encoder = JobEncoder(StaticRegistry(), candidate_cache=POOL_LISTS)
        self._rng = np.random.default_rng(options.seed)
        self._ids = (user_ids, item_ids)
        self.shape = JobShape(model=MODEL)
        self.clock = SystemClock()

    def send(self, n_jobs: int, rate: float = 0.0) -> None:
        jobs = generate_jobs(self._rng, *self._ids, n_jobs, self.shape, self.clock)
        produce_jobs(self._producer, self._topic, self._encoder, jobs, self.clock, rate)


def _run(
    options: DemoOptions,
    work: Path,
    bootstrap: str,
    topics: tuple[str, str],
    run_id: str,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
) -> int:
    stream = _JobStream(bootstrap, topics[0], options, user_ids, item_ids)
    print(f"[3/5] producing {options.jobs:,} jobs (~{stream.shape.mean_candidates} candidates "
          f"each) to {topics[0]}")  # fmt: skip
    stream.send(options.jobs)
    registry = CollectorRegistry()
    service = Service(scorer_config(work, bootstrap, topics, f"demo-scorer-{run_id}"), registry)
    port = service.start_http()
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="scorer")
    progress = _Progress(registry)
    print(f"[4/5] scoring the backlog (metrics: http://127.0.0.1:{port}/metrics)")
    thread.start()
    try:
        _wait_assigned(service, options.timeout_s)
        wall0, cpu0 = time.monotonic(), time.process_time()
        _wait_scored(progress, options.jobs, service, options.timeout_s)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        predictions = progress.predictions()
        rate = options.jobs / wall * LATENCY_LOAD
        n_latency = int(rate * options.latency_seconds)
        print(f"[5/5] streaming {n_latency:,} more jobs open-loop at {rate:,.0f} jobs/s "
              f"({LATENCY_LOAD:.0%} of the measured rate) for latency")  # fmt: skip
        latency_from = stream.clock.now_ms()
        stream.send(n_latency, rate)
        _wait_scored(progress, options.jobs + n_latency, service, options.timeout_s)
    finally:
        stop.set()
        thread.join(timeout=60)
    lists = [r.ranked for r in read_ranked(bootstrap, topics[1], options.jobs + n_latency, 120)]
    _summary(options, lists, wall, cpu, predictions, latency_from, n_latency)
    return 0 if len(lists) >= options.jobs + n_latency else 1


def _summary(
    options: DemoOptions,
    lists: list[RankedList],
    wall: float,
    cpu: float,
    predictions: float,
    latency_from: int,
    n_latency: int,
) -> None:
    latency = np.array(
        [r.scored_at_ms - r.created_at_ms for r in lists if r.created_at_ms >= latency_from],
        dtype=np.float64,
    )
    expected = options.jobs + n_latency
    rows = [
        ("jobs scored (backlog)", f"{options.jobs:,}"),
        ("wall time", f"{wall:.2f} s"),
        ("throughput", f"{options.jobs / wall:,.0f} jobs/s"),
        ("predictions/s", f"{predictions / wall:,.0f}"),
        ("predictions per CPU-second (scorer process)", f"{predictions / max(cpu, 1e-9):,.0f}"),
        (f"latency jobs (open loop, {LATENCY_LOAD:.0%} load)", f"{n_latency:,}"),
        ("e2e latency p50 (scored_at - created_at)", f"{_percentile(latency, 50):.1f} ms"),
        ("e2e latency p99", f"{_percentile(latency, 99):.1f} ms"),
        ("ranked lists read back", f"{len(lists):,} of {expected:,}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nSummary")
    for key, value in rows:
        print(f"  {key:<{width}}  {value:>16}")
    print("\nA few ranked lists (top 5 of top_k):")
    for r in lists[:3]:
        top = ", ".join(
            f"{i}:{s:.4f}"
            for i, s in zip(r.item_ids[:5].tolist(), r.scores[:5].tolist(), strict=True)
        )
        print(
            f"  user {r.user_id} model {r.model}@{r.model_version} request {r.request_id[:8]}"
            f" -> [{top}, ...] ({r.item_ids.size} items)"
        )
