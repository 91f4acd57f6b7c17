"""`stream-scorer run --workers N`: N scorer processes in one consumer group.

The parent loads the models and the embedded feature tables once and builds the kernel's per-item
state of the item snapshot for every model, then forks the workers before any thread or Kafka
client exists, so the read-only numpy arrays (weights, feature tables, per-item state) are shared
copy-on-write instead of copied N times; each worker then builds its own Kafka clients, event-loop
thread and scratch buffers. A snapshot reloaded later is loaded by each worker itself (its copy is
that worker's own memory until the next restart). SIGTERM/SIGINT to the parent is forwarded to
every worker; the parent exits with the first non-zero worker exit code, or 0.

Scaling beyond one machine is more workers in the same group: a partition is consumed by one
worker at a time, so the input topic's partition count bounds the useful number of workers.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
from dataclasses import replace
from types import FrameType

from prometheus_client import CollectorRegistry

from consumer.clock import SystemClock
from consumer.config import Config
from consumer.errors import StreamScorerError
from consumer.features.prepared import PreparedScorer
from consumer.features.source import FeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.service import Service
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
    """Worker `index`'s config: metrics port offset by the index (unless 0 = any free port)."""
    server = config.server
    if server.port:
        server = replace(server, port=server.port + index)
    return replace(config, server=server)


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
    except StreamScorerError as exc:
        log.critical("worker %d failed: %s: %s", index, type(exc).__name__, exc)
        code = 1
    os._exit(code)


def run_workers(config: Config, workers: int) -> int:
    """Fork `workers` scorers sharing the preloaded models, features and the kernel's per-item
    state of the item snapshot; wait for all."""
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

    def forward(signum: int, _frame: FrameType | None) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = []
    for proc in procs:
        proc.join()
        codes.append(proc.exitcode or 0)
    log.info("workers exited with %s", codes)
    return next((c for c in codes if c != 0), 0)
