"""The dependencies the service cannot work without, and whether each one answers now.

One `DependencyState` per dependency: ``kafka`` (the cluster, judged from the consumer's
connection: `consumer.stream.connection`), ``schema_registry`` (when ``schemas.registry_url`` is
set: `ObservedRegistry`) and ``feature_store`` (when ``features.source = "http"``: marked by the
`FeatureFetcher`). Each is exported as ``stream_scorer_dependency_up{dependency}`` (1 or 0) and
``stream_scorer_dependency_down_seconds{dependency}`` (seconds since it last answered, computed
when scraped; 0 while it answers). A dependency that is not configured exports nothing.

Invariants: a state starts down until the first answer (a service that never reached its
dependency is not healthy); marking is cheap when nothing changes (the hot path marks per batch);
only a transition writes the gauge.
"""

from __future__ import annotations

from consumer.clock import Clock
from consumer.metrics import Metrics
from schemas.errors import RegistryError, UnknownSchemaIdError
from schemas.parsed import ParsedSchema
from schemas.registry import SchemaRegistry

KAFKA = "kafka"
SCHEMA_REGISTRY = "schema_registry"
FEATURE_STORE = "feature_store"


class DependencyState:
    """Up or down, and since when the dependency last answered."""

    def __init__(self, name: str, metrics: Metrics, clock: Clock, up: bool = False) -> None:
        self.name = name
        self.reason = "" if up else "no answer yet"
        self._clock = clock
        self._up = up
        self._last_answer = clock.monotonic()
        self._gauge = metrics.dependency_up.labels(name)
        self._gauge.set(1 if up else 0)
        metrics.dependency_down_seconds.labels(name).set_function(self.down_for)

    @property
    def up(self) -> bool:
        return self._up

    def mark_up(self) -> bool:
        """The dependency answered; True when it was down until now."""
        self._last_answer = self._clock.monotonic()
        if self._up:
            return False
        self._up = True
        self.reason = ""
        self._gauge.set(1)
        return True

    def mark_down(self, reason: str) -> bool:
        """The dependency did not answer; True when it was up until now."""
        self.reason = reason
        if not self._up:
            return False
        self._up = False
        self._gauge.set(0)
        return True

    def down_for(self) -> float:
        """Seconds since the last answer while down (since start if it never answered), else 0."""
        return 0.0 if self._up else self._clock.monotonic() - self._last_answer


class ObservedRegistry:
    """A `SchemaRegistry` whose calls mark the ``schema_registry`` dependency up or down.

    Answers from the client's cache count as answers: the state says whether the scorer can
    resolve what it needs, which is what matters to the stream.
    """

    def __init__(self, inner: SchemaRegistry, state: DependencyState) -> None:
        self._inner = inner
        self.state = state

    def schema_for_id(self, schema_id: int) -> ParsedSchema:
        try:
            schema = self._inner.schema_for_id(schema_id)
        except RegistryError as exc:
            self.state.mark_down(str(exc))
            raise
        except UnknownSchemaIdError:
            self.state.mark_up()  # "no such id" is an answer
            raise
        self.state.mark_up()
        return schema

    def id_for(self, subject: str, schema: ParsedSchema) -> int:
        try:
            schema_id = self._inner.id_for(subject, schema)
        except RegistryError as exc:
            self.state.mark_down(str(exc))
            raise
        self.state.mark_up()
        return schema_id
