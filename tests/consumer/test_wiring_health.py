"""Which dependencies the wiring observes: only the ones a configuration has."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import Config
from consumer.metrics import Metrics
from consumer.telemetry.health import ObservedRegistry
from consumer.wiring import build_schema_registry, feature_store_state
from schemas.registry import StaticRegistry


def test_a_registry_url_is_an_observed_dependency_and_static_mode_is_not() -> None:
    metrics, clock = Metrics(CollectorRegistry()), ManualClock()
    config = Config()
    assert isinstance(build_schema_registry(config, metrics, clock), StaticRegistry)
    remote = replace(config, schemas=replace(config.schemas, registry_url="http://r:8081"))
    observed = build_schema_registry(remote, metrics, clock)
    assert isinstance(observed, ObservedRegistry)
    labels = {"dependency": "schema_registry"}
    assert metrics.registry.get_sample_value("stream_scorer_dependency_up", labels) == 0


def test_only_a_remote_feature_store_is_a_dependency() -> None:
    metrics, clock = Metrics(CollectorRegistry()), ManualClock()
    config = Config()
    assert feature_store_state(config, metrics, clock) is None
    http = replace(config, features=replace(config.features, source="http", url="http://f"))
    state = feature_store_state(http, metrics, clock)
    assert state is not None
    assert state.name == "feature_store"
