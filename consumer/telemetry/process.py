"""Process metrics on an injected registry: RSS, CPU, fds, platform, GC counts and GC pauses.

`register_process_metrics(registry)` adds prometheus_client's process, platform and GC
collectors (``process_*``, ``python_info``, ``python_gc_*``) and `GcPauseCollector`
(``stream_scorer_gc_pause_seconds{generation}``) to one registry. Every collector reads the
process it is collected in (``/proc/self``, ``gc.get_stats()``), so each forked worker exports its
own figures on its own port.

GC pauses are timed by one `gc.callbacks` hook per process, installed when the first registry
asks for it (never at import), and reset in a forked child so a worker counts only its own
pauses. The hook only adds to a few lists: it runs inside every collection on whatever thread
triggered it.
"""

from __future__ import annotations

import gc
import os
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
GENERATIONS = 3


class GcPauses:
    """Cumulative GC pause histograms per generation, fed by `gc.callbacks`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.buckets = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(GENERATIONS)]
        self.sums = [0.0] * GENERATIONS
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = min(int(info.get("generation", 0)), GENERATIONS - 1)
        self.buckets[generation][bisect_left(PAUSE_BUCKETS, pause)] += 1
        self.sums[generation] += pause


_PAUSES: GcPauses | None = None


def gc_pauses() -> GcPauses:
    """The process's pause recorder, its `gc.callbacks` hook installed on first use."""
    global _PAUSES
    if _PAUSES is None:
        _PAUSES = GcPauses()
        gc.callbacks.append(_PAUSES)
        os.register_at_fork(after_in_child=_PAUSES.reset)
    return _PAUSES


class GcPauseCollector:
    """``stream_scorer_gc_pause_seconds{generation}``: how long each collection stopped the
    process (every thread: the collector holds the GIL)."""

    def __init__(self, pauses: GcPauses) -> None:
        self._pauses = pauses

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            "stream_scorer_gc_pause_seconds",
            "Garbage collection pauses, by generation.",
            labels=["generation"],
        )
        bounds = [*(str(b) for b in PAUSE_BUCKETS), "+Inf"]
        for generation in range(GENERATIONS):
            counts = list(self._pauses.buckets[generation])
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric([str(generation)], cumulative, self._pauses.sums[generation])
        yield family


def register_process_metrics(registry: CollectorRegistry) -> None:
    """Process, platform, GC and GC-pause collectors on `registry`."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(GcPauseCollector(gc_pauses()))
