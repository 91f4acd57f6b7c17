"""Every Prometheus metric of the service, defined once around an injected registry.

No metric is registered at import time: tests and multiple scorers in one process each build a
`Metrics` on their own `CollectorRegistry`. Names are a contract with dashboards and alert rules.
The registry also gets the process collectors (`consumer.telemetry.process`); `exposition` renders
it without the ``*_created`` series. `Metrics.for_api` is the standalone ranking API's subset:
defined like the rest, exported only if it is ever updated there.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from consumer.telemetry.process import register_process_metrics

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

STAGES = ("poll", "decode", "features", "score", "encode", "produce", "commit")


def observe_many(histogram: Histogram, values: NDArray[np.float64]) -> None:
    """``histogram.observe(v)`` for every value, with one increment per bucket hit.

    A 512-job batch observed its latencies one call at a time (~3% of the loop's CPU). This reads
    the unlabelled histogram's bucket bounds (prometheus_client keeps them on the child) and falls
    back to one ``observe`` per value if that layout is not there.
    """
    bounds: Any = getattr(histogram, "_upper_bounds", None)
    buckets: Any = getattr(histogram, "_buckets", None)
    total: Any = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values.tolist():
            histogram.observe(value)
        return
    if values.size == 0:
        return
    hit = np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left")
    counts = np.bincount(hit, minlength=len(bounds) + 1)[: len(bounds)]  # NaN lands nowhere
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))


class Metrics:
    """The service's metrics on one registry."""

    def __init__(
        self, registry: CollectorRegistry, exported: Collection[str] | None = None
    ) -> None:
        """Every metric on `registry`; with `exported`, only those attributes stay registered
        (the others still count, unseen)."""
        self.registry = registry
        ns = "stream_scorer"
        self._define_stream(ns, registry)
        self._define_delivery(ns, registry)
        self._define_features(ns, registry)
        self._define_api(ns, registry)
        self._define_observability(ns, registry)
        self._define_dependencies(ns, registry)
        self._define_api_edges(ns, registry)
        self._define_snapshots(ns, registry)
        if exported is not None:
            self._unregister_except(exported)

    @classmethod
    def for_api(cls, registry: CollectorRegistry, remote_features: bool) -> Metrics:
        """The metrics `stream-scorer serve` updates: no Kafka loop, feature-store client only
        when features come over HTTP."""
        exported = API_METRICS | (FEATURE_METRICS if remote_features else frozenset())
        return cls(registry, exported)

    def _unregister_except(self, exported: Collection[str]) -> None:
        for name, value in list(vars(self).items()):
            if isinstance(value, MetricWrapperBase) and name not in exported:
                self.registry.unregister(value)

    def _define_stream(self, ns: str, registry: CollectorRegistry) -> None:
        """The Kafka loop: throughput, stages, latency, lag, models served."""
        self.jobs_consumed = Counter(
            "jobs_consumed", "Input records consumed.", namespace=ns, registry=registry
        )
        self.jobs_scored = Counter(
            "jobs_scored", "Jobs scored, by model.", ["model"], namespace=ns, registry=registry
        )
        self.ranked_lists_produced = Counter(
            "ranked_lists_produced",
            "Ranked lists acknowledged by the broker.",
            namespace=ns,
            registry=registry,
        )
        self.predictions = Counter(
            "predictions",
            "Candidates scored, by model.",
            ["model"],
            namespace=ns,
            registry=registry,
        )
        self.errors = Counter(
            "errors", "Errors by kind.", ["kind"], namespace=ns, registry=registry
        )
        self.batch_size = Histogram(
            "batch_size_jobs",
            "Jobs per micro-batch.",
            namespace=ns,
            registry=registry,
            buckets=_BATCH_BUCKETS,
        )
        self.stage_seconds = Histogram(
            "stage_seconds",
            "Time per micro-batch spent in each stage.",
            ["stage"],
            namespace=ns,
            registry=registry,
            buckets=_STAGE_BUCKETS,
        )
        self.e2e_latency = Histogram(
            "e2e_latency_seconds",
            "scored_at - created_at of each ranked list.",
            namespace=ns,
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.consumer_lag = Gauge(
            "consumer_lag",
            "High watermark minus position, per assigned partition.",
            ["topic", "partition"],
            namespace=ns,
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "assigned_partitions",
            "Partitions assigned to this scorer.",
            namespace=ns,
            registry=registry,
        )
        self.committed_offsets = Counter(
            "offset_commits",
            "Offset commits sent to the broker.",
            namespace=ns,
            registry=registry,
        )
        self.model_info = Gauge(
            "model_info",
            "Models served (value 1), by name and version.",
            ["model", "version"],
            namespace=ns,
            registry=registry,
        )
        self.in_flight = Gauge(
            "in_flight_jobs",
            "Consumed jobs whose outputs are not yet acknowledged.",
            namespace=ns,
            registry=registry,
        )
        self.stages = {stage: self.stage_seconds.labels(stage) for stage in STAGES}

    def _define_delivery(self, ns: str, registry: CollectorRegistry) -> None:
        """Degraded, late and dead-lettered jobs, pauses, model reloads, shadows."""
        self.degraded_jobs = Counter(
            "degraded_jobs",
            "Jobs scored with default features (store unavailable or late).",
            namespace=ns,
            registry=registry,
        )
        self.late_jobs = Counter(
            "late_jobs",
            "Jobs older than the deadline when scored.",
            namespace=ns,
            registry=registry,
        )
        self.dead_letters = Counter(
            "dead_letters",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.model_reloads = Counter(
            "model_reloads",
            "Model (re)load attempts by result (success|failure).",
            ["model", "result"],
            namespace=ns,
            registry=registry,
        )
        self.shadow_overlap = Histogram(
            "shadow_topk_overlap",
            "Share of the served top-k the shadow model's top-k also holds.",
            ["model", "shadow"],
            namespace=ns,
            registry=registry,
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
        )
        self.paused = Gauge(
            "paused",
            "1 while consumption is paused (feature store down under 'pause').",
            namespace=ns,
            registry=registry,
        )

    def _define_features(self, ns: str, registry: CollectorRegistry) -> None:
        """The HTTP feature source: requests, rows, misses, cache, breaker."""
        self.feature_request_seconds = Histogram(
            "feature_request_seconds",
            "Feature-store HTTP request latency.",
            ["entity"],
            namespace=ns,
            registry=registry,
            buckets=_STAGE_BUCKETS,
        )
        self.feature_errors = Counter(
            "feature_errors",
            "Feature-store errors by kind.",
            ["kind"],
            namespace=ns,
            registry=registry,
        )
        self.feature_rows = Counter(
            "feature_rows_requested",
            "Entity rows requested from the feature store.",
            ["entity"],
            namespace=ns,
            registry=registry,
        )
        self.feature_missing = Counter(
            "feature_missing_values",
            "Feature values absent (NOT_FOUND, NULL, OUTSIDE_MAX_AGE).",
            ["entity"],
            namespace=ns,
            registry=registry,
        )
        self.feature_cache_hits = Counter(
            "feature_cache_hits",
            "Feature cache hits.",
            ["entity"],
            namespace=ns,
            registry=registry,
        )
        self.feature_cache_misses = Counter(
            "feature_cache_misses",
            "Feature cache misses.",
            ["entity"],
            namespace=ns,
            registry=registry,
        )
        self.feature_breaker_open = Gauge(
            "feature_breaker_open",
            "1 while the feature-store circuit breaker is open.",
            namespace=ns,
            registry=registry,
        )

    def _define_api(self, ns: str, registry: CollectorRegistry) -> None:
        """The ranking API (consumer/api/server.py): requests labelled by path."""
        self.api_requests = Counter(
            "api_requests",
            "Ranking API requests answered, by path and HTTP status.",
            ["path", "status"],
            namespace=ns,
            registry=registry,
        )
        self.api_request_seconds = Histogram(
            "api_request_seconds",
            "Ranking API request latency (receipt to response), by path.",
            ["path"],
            namespace=ns,
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.api_batch_size_jobs = Histogram(
            "api_batch_size_jobs",
            "Requests per ranking API micro-batch.",
            namespace=ns,
            registry=registry,
            buckets=_BATCH_BUCKETS,
        )
        self.api_predictions = Counter(
            "api_predictions",
            "Candidates scored by the ranking API, by model.",
            ["model"],
            namespace=ns,
            registry=registry,
        )

    def _define_snapshots(self, ns: str, registry: CollectorRegistry) -> None:
        """Feature snapshots (consumer/features/snapshot_watch.py) and the kernel's CPU share."""
        self.feature_snapshot_loads = Counter(
            "feature_snapshot_loads",
            "Feature snapshot reloads by entity (user|item) and result (success|failure).",
            ["entity", "result"],
            namespace=ns,
            registry=registry,
        )
        self.feature_snapshot_rows = Gauge(
            "feature_snapshot_rows",
            "Rows of the feature snapshot serving, by entity.",
            ["entity"],
            namespace=ns,
            registry=registry,
        )
        self.feature_snapshot_load_seconds = Histogram(
            "feature_snapshot_load_seconds",
            "Time to load, validate and prepare a reloaded feature snapshot, by entity.",
            ["entity"],
            namespace=ns,
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        )
        self.feature_snapshot_timestamp = Gauge(
            "feature_snapshot_timestamp_seconds",
            "Modification time (epoch s) of the feature snapshot file serving, by entity.",
            ["entity"],
            namespace=ns,
            registry=registry,
        )
        self.kernel_cpu_seconds = Counter(
            "kernel_cpu_seconds",
            "CPU seconds the scoring thread spent in the kernel (Scorer.rank), shadows included.",
            namespace=ns,
            registry=registry,
        )

    def _define_api_edges(self, ns: str, registry: CollectorRegistry) -> None:
        """The ranking API's connections (consumer/api/connections.py) and vanished clients."""
        self.api_open_connections = Gauge(
            "api_open_connections",
            "Connections the ranking API holds open.",
            namespace=ns,
            registry=registry,
        )
        self.api_connections_rejected = Counter(
            "api_connections_rejected",
            "Connections answered 503 and closed because api.max_connections were open.",
            namespace=ns,
            registry=registry,
        )
        self.api_client_disconnects = Counter(
            "api_client_disconnects",
            "Ranking API clients gone before their answer, by stage (request|answer).",
            ["stage"],
            namespace=ns,
            registry=registry,
        )
        self.api_malformed_requests = Counter(
            "api_malformed_requests",
            "Requests the ranking API's HTTP parser refused (answered 400 by aiohttp).",
            namespace=ns,
            registry=registry,
        )
        self.api_header_timeouts = Counter(
            "api_header_timeouts",
            "Ranking API connections closed because a request head took over api.header_timeout_s.",
            namespace=ns,
            registry=registry,
        )

    def _define_dependencies(self, ns: str, registry: CollectorRegistry) -> None:
        """Dependencies (consumer/telemetry/health.py): up or down, how long; librdkafka errors."""
        self.dependency_up = Gauge(
            "dependency_up",
            "1 while the dependency (kafka, schema_registry, feature_store) answers, else 0.",
            ["dependency"],
            namespace=ns,
            registry=registry,
        )
        self.dependency_down_seconds = Gauge(
            "dependency_down_seconds",
            "Seconds since the dependency last answered, while it does not (0 while up).",
            ["dependency"],
            namespace=ns,
            registry=registry,
        )
        self.kafka_client_errors = Counter(
            "kafka_client_errors",
            "Errors librdkafka reported (error callback), by client and error code.",
            ["client", "code"],
            namespace=ns,
            registry=registry,
        )

    def _define_observability(self, ns: str, registry: CollectorRegistry) -> None:
        """Trace context dropped as malformed; the process collectors (RSS, CPU, fds, GC)."""
        self.trace_context_dropped = Counter(
            "trace_context_dropped",
            "Malformed trace context headers ignored, by source (kafka|http) and header.",
            ["source", "header"],
            namespace=ns,
            registry=registry,
        )
        register_process_metrics(registry)


FEATURE_METRICS = frozenset({
    "feature_request_seconds", "feature_errors", "feature_rows", "feature_missing",
    "feature_cache_hits", "feature_cache_misses", "feature_breaker_open",
})  # fmt: skip
API_METRICS = frozenset({
    "model_info", "model_reloads", "api_requests", "api_request_seconds", "api_batch_size_jobs",
    "api_predictions", "trace_context_dropped", "api_open_connections", "api_connections_rejected",
    "api_client_disconnects", "api_malformed_requests", "api_header_timeouts",
})  # fmt: skip


class _WithoutCreated:
    """A registry's metrics without their ``*_created`` samples (creation timestamps: ~one extra
    series per counter and histogram that no dashboard or rule reads)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            created = metric.name + "_created"
            kept = [s for s in metric.samples if s.name != created]
            if len(kept) != len(metric.samples):
                metric = copy.copy(metric)
                metric.samples = kept
            yield metric


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`, ``*_created`` series left out.

    Filtered here rather than with prometheus_client's process-wide `disable_created_metrics`,
    which would change every registry in the process.
    """
    return generate_latest(_WithoutCreated(registry))


def family_names(registry: CollectorRegistry) -> Iterable[tuple[str, str]]:
    """(name, type) of every metric family a scrape of `registry` shows."""
    return ((m.name, m.type) for m in _WithoutCreated(registry).collect())
