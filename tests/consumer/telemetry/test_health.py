"""Dependency states: up/down transitions, the gauges, and the observed schema registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.metrics import Metrics
from consumer.telemetry.health import DependencyState, ObservedRegistry
from schemas.errors import RegistryError, UnknownSchemaIdError
from schemas.parsed import ParsedSchema, bundled


def gauges(metrics: Metrics, name: str) -> tuple[float | None, float | None]:
    labels = {"dependency": name}
    return (
        metrics.registry.get_sample_value("stream_scorer_dependency_up", labels),
        metrics.registry.get_sample_value("stream_scorer_dependency_down_seconds", labels),
    )


def test_a_dependency_is_down_until_it_answers_and_counts_since_its_last_answer() -> None:
    metrics, clock = Metrics(CollectorRegistry()), ManualClock()
    state = DependencyState("kafka", metrics, clock)
    clock.advance(4)
    assert gauges(metrics, "kafka") == (0, 4)  # never answered: down since start
    assert state.mark_up() is True
    assert state.mark_up() is False  # no transition, no gauge write
    clock.advance(10)
    state.mark_up()  # answered again at t=14
    clock.advance(3)
    assert gauges(metrics, "kafka") == (1, 0)
    assert state.mark_down("connection refused") is True
    clock.advance(5)
    assert gauges(metrics, "kafka") == (0, 8)  # computed when scraped, from the last answer
    assert (state.up, state.reason, state.down_for()) == (False, "connection refused", 8)
    assert state.mark_down("again") is False
    assert state.reason == "again"


def test_an_unconfigured_dependency_exports_nothing() -> None:
    metrics = Metrics(CollectorRegistry())
    DependencyState("kafka", metrics, ManualClock())
    assert gauges(metrics, "feature_store") == (None, None)


class FlakyRegistry:
    def __init__(self) -> None:
        self.error: Exception | None = None

    def schema_for_id(self, schema_id: int) -> ParsedSchema:
        if self.error is not None:
            raise self.error
        return bundled("RankedList")

    def id_for(self, subject: str, schema: ParsedSchema) -> int:
        if self.error is not None:
            raise self.error
        return 2


def test_the_observed_registry_marks_answers_and_failures() -> None:
    metrics = Metrics(CollectorRegistry())
    inner = FlakyRegistry()
    registry = ObservedRegistry(inner, DependencyState("schema_registry", metrics, ManualClock()))
    assert registry.schema_for_id(2).fullname.endswith("RankedList")
    assert registry.state.up
    inner.error = RegistryError("connection refused", url="http://r")
    with pytest.raises(RegistryError):
        registry.id_for("s", bundled("RankedList"))
    assert not registry.state.up
    assert "connection refused" in registry.state.reason
    inner.error = UnknownSchemaIdError(9)  # "no such id" is an answer
    with pytest.raises(UnknownSchemaIdError):
        registry.schema_for_id(9)
    assert registry.state.up
