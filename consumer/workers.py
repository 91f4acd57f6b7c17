"""`stream-scorer run --workers N`: N scorer processes in one consumer group.

The parent loads the models and the embedded feature tables once and builds the kernel's per-item
state of the item snapshot for every model, then forks the workers before any thread or Kafka
client exists, so the read-only numpy arrays (weights, feature tables, per-item state) are shared
copy-on-write instead of copied N times; each worker then builds its own Kafka clients, event-loop
thread and scratch buffers. A snapshot reloaded later is loaded by each worker itself (its copy is
that worker's own memory until the next restart). SIGTERM/SIGINT to the parent is forwarded to
every worker.

Every listener gets a port of its own per worker: worker i serves metrics on ``server.port + i``
and, with the API enabled, the API on ``api.port + i`` (a port of 0 stays 0: each picks a free
one); overlapping ranges are refused before any worker starts. A configured transactional id and
static-membership ``group.instance.id`` get ``-<i>`` for worker i > 0. When a worker exits that the
parent did not stop (a crash, kill -9, a lost cluster), the parent stops the others and exits
with that worker's code (128 + N when killed by signal N; 1 if it exited 0 on its own), so the
group never runs on fewer workers than asked and an orchestrator restarts the whole group.

Scaling beyond one machine is more workers in the same group: a partition is consumed by one
worker at a time, so the input topic's partition count bounds the useful number of workers.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from prometheus_client import CollectorRegistry

from consumer.clock import SystemClock
from consumer.config import Config
from consumer.errors import ConfigError
from consumer.exits import EXIT_FAILURE, describe, signal_exit_code
from consumer.features.prepared import PreparedScorer
from consumer.features.source import FeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.service import Service
from consumer.telemetry.logs import bind_worker
from consumer.wiring import build_feature_source, build_scorer, load_models

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Exempt every object alive now (modules, models, feature tables) from garbage collection.

    Full collections then scan only what the loop itself allocates: with the startup heap tracked,
    each one paused the loop for up to ~50 ms. Before a fork it also keeps the collector from
    writing to, and so copying, the pages the workers share.
    """
    gc.collect()
    gc.freeze()


def worker_config(config: Config, index: int) -> Config:
    """Forked worker `index`'s config: what must differ between the workers of one group.

    Every listener's port is offset by the index (0 = any free port), and for index > 0 the
    identities the broker fences on get ``-<index>``: a configured ``delivery.transactional_id``
    and ``group.instance.id`` (static membership). Shared, each worker would fence the others.
    """
    server, api = config.server, config.api
    if server.port:
        server = replace(server, port=server.port + index)
    if api.port:
        api = replace(api, port=api.port + index)
    delivery, kafka = config.delivery, config.kafka
    if index and delivery.transactional_id:
        delivery = replace(delivery, transactional_id=f"{delivery.transactional_id}-{index}")
    instance = kafka.consumer.get("group.instance.id")
    if index and instance:
        kafka = replace(
            kafka, consumer={**kafka.consumer, "group.instance.id": f"{instance}-{index}"}
        )
    return replace(config, server=server, api=api, delivery=delivery, kafka=kafka)


def check_worker_ports(config: Config, workers: int) -> None:
    """Refuse port ranges of `workers` workers that overlap or leave the TCP range."""
    ranges = []
    if config.server.enabled and config.server.port:
        ranges.append(("server.port", config.server.port))
    if config.api.enabled and config.api.port:
        ranges.append(("api.port", config.api.port))
    for key, first in ranges:
        if first + workers - 1 > 65535:
            raise ConfigError(f"{first} + {workers} workers passes port 65535", key=key)
    if len(ranges) == 2:
        (_, a), (_, b) = ranges
        if abs(a - b) < workers:
            raise ConfigError(
                f"{a}..{a + workers - 1} and {b}..{b + workers - 1} overlap with {workers} "
                "workers (worker i listens on port + i)",
                key="api.port",
            )


def run_worker(
    config: Config, index: int, models: ModelRegistry | None = None,
    features: FeatureSource | None = None, scorer: PreparedScorer | None = None,
) -> int:  # fmt: skip
    """Run one scorer on this thread until SIGTERM/SIGINT; returns the exit code."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("worker %d: signal %d, stopping", index, signum)
        if not stop.is_set():
            stop.set()
            bound = config.delivery.shutdown_timeout_s
            timer = threading.Timer(bound, _hard_exit, args=(index, bound))
            timer.daemon = True
            timer.start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    bind_worker(index)
    service = Service(config, worker_index=index, models=models, features=features, scorer=scorer)
    freeze_startup_heap()
    if config.server.enabled:
        service.start_http()
    service.run(stop)
    return 0


def _hard_exit(index: int, bound: float) -> None:
    log.critical("worker %d did not stop within %.0fs: exiting", index, bound)
    os._exit(70)


def _child(
    config: Config, index: int, models: ModelRegistry, features: FeatureSource,
    scorer: PreparedScorer,
) -> None:  # fmt: skip
    try:
        code = run_worker(worker_config(config, index), index, models, features, scorer)
    except (Exception, KeyboardInterrupt) as exc:
        failure = describe(exc)
        log.debug("worker %d failed", index, exc_info=True)
        log.critical("worker %d: %s", index, failure.line)
        code = failure.code
    logging.shutdown()
    os._exit(code)


def run_workers(config: Config, workers: int) -> int:
    """Fork `workers` scorers sharing the preloaded models, features and the kernel's per-item
    state of the item snapshot; supervise them."""
    check_worker_ports(config, workers)
    models = load_models(config)
    features = build_feature_source(config, Metrics(CollectorRegistry()), SystemClock())
    scorer = build_scorer(models, features)
    freeze_startup_heap()
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_child, args=(config, i, models, features, scorer), name=f"scorer-{i}")
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    log.info("started %d workers: %s", workers, [p.pid for p in procs])
    stopping = threading.Event()

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        _signal_all(procs, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return supervise(procs, stopping, config.delivery.shutdown_timeout_s)


def _signal_all(procs: Sequence[BaseProcess], signum: int) -> None:
    for proc in procs:
        if proc.pid is not None and proc.exitcode is None:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(proc.pid, signum)


def supervise(procs: Sequence[BaseProcess], stopping: threading.Event, bound_s: float) -> int:
    """Wait for every worker; the first one to exit unasked stops the others and sets the code."""
    code = 0
    running = list(procs)
    while running:
        wait([p.sentinel for p in running])
        for proc in [p for p in running if p.exitcode is not None]:
            running.remove(proc)
            exit_code = signal_exit_code(proc.exitcode or 0)
            if stopping.is_set():
                code = code or exit_code
                continue
            code = exit_code or EXIT_FAILURE
            log.critical("worker %s (pid %s) exited with %d: stopping the other workers",
                         proc.name, proc.pid, exit_code)  # fmt: skip
            stopping.set()
            _signal_all(running, signal.SIGTERM)
            _kill_after(running, bound_s + 5.0)
    log.info("workers exited; exit code %d", code)
    return code


def _kill_after(procs: Sequence[BaseProcess], bound_s: float) -> None:
    """SIGKILL whatever still runs after `bound_s` (each worker's own bound already passed)."""
    timer = threading.Timer(bound_s, _signal_all, args=(list(procs), signal.SIGKILL))
    timer.daemon = True
    timer.start()
