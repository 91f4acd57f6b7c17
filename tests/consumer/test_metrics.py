"""Metrics helpers: a bulk histogram observation equals one observation per value."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from consumer.metrics import observe_many

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("h", "doc", registry=registry, buckets=BUCKETS)


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [
        line for line in generate_latest(registry).decode().splitlines() if "_created" not in line
    ]


def test_observe_many_equals_observing_each_value() -> None:
    values = np.array([0.0, 0.001, 0.0011, 0.01, 0.5, 1.0, 1.5, 7.0, 0.001, -2.0])
    bulk_registry, bulk = _histogram()
    each_registry, each = _histogram()
    observe_many(bulk, values)
    observe_many(bulk, np.zeros(0))
    for value in values.tolist():
        each.observe(value)
    assert _exposition(bulk_registry) == _exposition(each_registry)
    assert bulk_registry.get_sample_value("h_bucket", {"le": "0.001"}) == 4  # 0.001 <= bound


def test_observe_many_on_a_labelled_child() -> None:
    registry = CollectorRegistry()
    family = Histogram("h", "doc", ["stage"], registry=registry, buckets=BUCKETS)
    observe_many(family.labels("score"), np.array([0.005, 0.05]))
    assert registry.get_sample_value("h_count", {"stage": "score"}) == 2
    assert registry.get_sample_value("h_bucket", {"stage": "score", "le": "0.01"}) == 1
