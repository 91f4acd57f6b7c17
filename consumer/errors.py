"""The application's exception tree, sorted by what the caller must do.

    StreamScorerError       root of everything this application raises
    ├── ConfigError         fatal: bad configuration; exit non-zero before consuming
    ├── StartupError        fatal: a resource the configuration names cannot be used at start-up
    │                       (port in use, schema registry unreachable); exit non-zero
    ├── DependencyLostError fatal: a dependency stayed unreachable past its configured bound;
    │                       exit non-zero so the orchestrator restarts the process
    ├── TransportError      retriable: broker or feature store unreachable / timed out
    │   ├── DeliveryError   an output was not acknowledged; never commit past it
    │   ├── FeaturesUnavailableError  the feature store cannot answer (policy decides)
    │   ├── FeatureTimeoutError       a batch's features did not arrive within its budget
    │   └── TransactionAbortedError   exactly-once batch aborted; rewind and retry it
    ├── FatalKafkaError     fenced or fatal client error: exit non-zero, loudly
    ├── PoisonMessageError  this one input can never be scored; skip it and commit
    ├── ModelError          a model could not be loaded or used; keep serving the old one
    └── LocalKafkaError     (consumer.devtools.local_kafka) the local development broker failed

The pure packages keep their own roots (`schemas.errors.SchemaError`,
`scoring.errors.ScoringError`); this package translates them at its edges with
``raise ... from exc`` so callers of the application only ever catch `StreamScorerError`.
"""

from __future__ import annotations


class StreamScorerError(Exception):
    """Root of every error the application raises."""


class ConfigError(StreamScorerError):
    """The configuration is invalid; the service cannot start."""

    def __init__(self, reason: str, *, key: str | None = None) -> None:
        self.reason = reason
        self.key = key
        super().__init__(f"{key}: {reason}" if key else reason)


class StartupError(StreamScorerError):
    """A resource named by the configuration cannot be used at start-up (the key says which)."""

    def __init__(self, reason: str, *, key: str | None = None) -> None:
        self.reason = reason
        self.key = key
        super().__init__(f"{key}: {reason}" if key else reason)


class DependencyLostError(StreamScorerError):
    """A dependency (the Kafka cluster) stayed unreachable for longer than its configured bound."""

    def __init__(self, dependency: str, down_s: float, reason: str) -> None:
        self.dependency = dependency
        self.down_s = down_s
        self.reason = reason
        super().__init__(f"{dependency} unreachable for {down_s:.0f} s: {reason}")


class TransportError(StreamScorerError):
    """A remote peer failed in a way that may heal by retrying."""


class DeliveryError(TransportError):
    """The broker did not acknowledge an output record."""


class FeaturesUnavailableError(TransportError):
    """The feature store cannot answer for this batch (after retries, or the breaker is open)."""


class FeatureTimeoutError(TransportError):
    """A batch's feature fetch did not finish within its time budget (or deadline)."""


class FatalKafkaError(StreamScorerError):
    """The Kafka client cannot continue (fenced by a newer instance, fatal producer error)."""


class TransactionAbortedError(TransportError):
    """The current transaction was aborted; its batch must be re-read and retried."""


class PoisonMessageError(StreamScorerError):
    """An input record that can never be scored (undecodable or invalid)."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


class ModelError(StreamScorerError):
    """A model could not be loaded, or a job names a model that is not served."""
