"""The metric contract that dashboards and alert rules rely on, and where the deploy files live.

`CONTRACT` lists every metric name of the service with its type and label names: the ones
`consumer.metrics.Metrics` defines today and the ones announced for the feature-store client,
dead-letter queue and model reloads. `feed` registers what a registry lacks and gives every metric
a sample, so a scrape of that registry shows every series the rules and the dashboard read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumer.telemetry.process import GcPauseCollector

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_TESTS_DIR = DEPLOY / "prometheus" / "tests"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "stream-scorer.json"
SCRAPE_JOB = "stream-scorer"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...] = ()
    existing: bool = True  # False: announced, not yet defined by consumer.metrics


CONTRACT: dict[str, MetricSpec] = {
    "stream_scorer_jobs_consumed": MetricSpec("counter"),
    "stream_scorer_jobs_scored": MetricSpec("counter", ("model",)),
    "stream_scorer_ranked_lists_produced": MetricSpec("counter"),
    "stream_scorer_predictions": MetricSpec("counter", ("model",)),
    "stream_scorer_errors": MetricSpec("counter", ("kind",)),
    "stream_scorer_batch_size_jobs": MetricSpec("histogram"),
    "stream_scorer_stage_seconds": MetricSpec("histogram", ("stage",)),
    "stream_scorer_e2e_latency_seconds": MetricSpec("histogram"),
    "stream_scorer_consumer_lag": MetricSpec("gauge", ("topic", "partition")),
    "stream_scorer_assigned_partitions": MetricSpec("gauge"),
    "stream_scorer_offset_commits": MetricSpec("counter"),
    "stream_scorer_model_info": MetricSpec("gauge", ("model", "version")),
    "stream_scorer_in_flight_jobs": MetricSpec("gauge"),
    "stream_scorer_dead_letters": MetricSpec("counter", ("reason",)),
    "stream_scorer_feature_request_seconds": MetricSpec("histogram", ("entity",)),
    "stream_scorer_feature_errors": MetricSpec("counter", ("kind",)),
    "stream_scorer_feature_rows_requested": MetricSpec("counter", ("entity",)),
    "stream_scorer_feature_missing_values": MetricSpec("counter", ("entity",)),
    "stream_scorer_feature_cache_hits": MetricSpec("counter", ("entity",)),
    "stream_scorer_feature_cache_misses": MetricSpec("counter", ("entity",)),
    "stream_scorer_feature_breaker_open": MetricSpec("gauge"),
    "stream_scorer_degraded_jobs": MetricSpec("counter"),
    "stream_scorer_late_jobs": MetricSpec("counter"),
    "stream_scorer_paused": MetricSpec("gauge"),
    "stream_scorer_shadow_topk_overlap": MetricSpec("histogram", ("model", "shadow")),
    "stream_scorer_model_reloads": MetricSpec("counter", ("model", "result")),
    "stream_scorer_api_requests": MetricSpec("counter", ("path", "status")),
    "stream_scorer_api_request_seconds": MetricSpec("histogram", ("path",)),
    "stream_scorer_api_batch_size_jobs": MetricSpec("histogram"),
    "stream_scorer_api_predictions": MetricSpec("counter", ("model",)),
    "stream_scorer_trace_context_dropped": MetricSpec("counter", ("source", "header")),
    "stream_scorer_gc_pause_seconds": MetricSpec("histogram", ("generation",)),
    "stream_scorer_dependency_up": MetricSpec("gauge", ("dependency",)),
    "stream_scorer_dependency_down_seconds": MetricSpec("gauge", ("dependency",)),
    "stream_scorer_kafka_client_errors": MetricSpec("counter", ("client", "code")),
    "stream_scorer_api_open_connections": MetricSpec("gauge"),
    "stream_scorer_api_connections_rejected": MetricSpec("counter"),
    "stream_scorer_api_client_disconnects": MetricSpec("counter", ("stage",)),
    "stream_scorer_api_malformed_requests": MetricSpec("counter"),
    "stream_scorer_api_header_timeouts": MetricSpec("counter"),
    "stream_scorer_feature_snapshot_loads": MetricSpec("counter", ("entity", "result")),
    "stream_scorer_feature_snapshot_rows": MetricSpec("gauge", ("entity",)),
    "stream_scorer_feature_snapshot_load_seconds": MetricSpec("histogram", ("entity",)),
    "stream_scorer_feature_snapshot_timestamp_seconds": MetricSpec("gauge", ("entity",)),
    "stream_scorer_kernel_cpu_seconds": MetricSpec("counter"),
}

_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def exported_names() -> dict[str, str]:
    """Every series name a scrape can show, mapped to its metric's contract name."""
    return {
        name + suffix: name for name, spec in CONTRACT.items() for suffix in _SUFFIXES[spec.kind]
    }


RAW_NAME = re.compile(r"\bstream_scorer_[a-z0-9_]+")
PROCESS_NAME = re.compile(r"\b(?:process|python)_[a-z0-9_]+")


def process_names() -> set[str]:
    """Series names of the process collectors a scorer's registry exports (process_*, python_*):
    the rules and the dashboard may read these besides the contract."""
    from consumer.metrics import Metrics  # the real registry, not a stand-in

    registry = CollectorRegistry()
    Metrics(registry)
    return {s.name for m in registry.collect() for s in m.samples if PROCESS_NAME.fullmatch(s.name)}


RECORDED_NAME = re.compile(r"\bstream_scorer:[a-z0-9_:]+")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> Iterator[dict[str, Any]]:
    """Every rule (recording and alerting) of the rule files."""
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            yield from group["rules"]


def rule_texts() -> Iterator[str]:
    """Expressions and annotations of every rule: the places metric names appear."""
    for rule in rules():
        yield str(rule["expr"])
        yield from (str(v) for v in rule.get("annotations", {}).values())


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def dashboard_targets(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield from panel.get("targets", [])
        for inner in panel.get("panels", []):
            yield from inner.get("targets", [])


def dashboard_texts(dashboard: Mapping[str, Any]) -> Iterator[str]:
    for target in dashboard_targets(dashboard):
        yield str(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield str(variable["definition"])


def recorded_names() -> set[str]:
    return {str(rule["record"]) for rule in rules() if "record" in rule}


# Label values fed to every metric that carries the label.
SAMPLE_LABELS = {
    "model": "demo-lr",
    "version": "v1",
    "kind": "decode",
    "reason": "schema",
    "topic": "scoring-jobs",
    "partition": "0",
    "stage": "score",
    "result": "failure",
    "entity": "item",
    "shadow": "demo-lr-next",
    "path": "/v1/rank",
    "status": "200",
    "source": "kafka",
    "header": "traceparent",
    "generation": "0",
    "dependency": "kafka",
    "client": "consumer",
    "code": "_TRANSPORT",
}


def collector(registry: CollectorRegistry, name: str, spec: MetricSpec) -> Any:
    """The registry's collector for `name`, registering one per the contract if it has none."""
    existing = registry._names_to_collectors.get(name)  # no public lookup by name
    if existing is not None:
        return existing
    doc = f"{name} (contract test stand-in)"
    if spec.kind == "counter":
        return Counter(name, doc, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(name, doc, spec.labels, registry=registry)
    return Histogram(name, doc, spec.labels, registry=registry)


def feed(registry: CollectorRegistry, step: int = 1) -> None:
    """Give every contract metric a sample (call repeatedly: counters then have a rate)."""
    for name, spec in CONTRACT.items():
        metric = collector(registry, name, spec)
        if isinstance(metric, GcPauseCollector):
            continue  # reports the process's own pauses
        if spec.labels:
            metric = metric.labels(**{label: SAMPLE_LABELS[label] for label in spec.labels})
        if spec.kind == "counter":
            metric.inc(10 * step)
        elif spec.kind == "gauge":
            metric.set(1)
        else:
            for value in (0.004, 0.02, 0.3):
                metric.observe(value)
