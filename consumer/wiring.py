"""Wiring: every part the service and the ranking API are made of, built from one `Config`.

Only this module (and the entry points above it: `consumer.service`, `consumer.api.server`,
`consumer.workers`, the CLI) knows how the parts fit together; each part takes its collaborators
as arguments, so tests assemble the same parts around fakes. It imports neither the service nor
the API, so both can build on it without an import cycle.
"""

from __future__ import annotations

import socket

from consumer.clock import Clock
from consumer.config import Config
from consumer.features.fetcher import BatchFetcher
from consumer.features.http import HttpFeatureSource
from consumer.features.prepared import PreparedScorer, warm
from consumer.features.snapshot import SnapshotStore
from consumer.features.source import FeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.stream.processor import BatchProcessor
from schemas.registry import HttpSchemaRegistry, SchemaRegistry, StaticRegistry, load_bundled
from schemas.serde import JobDecoder, RankedListEncoder
from scoring.kernel import Scorer


def producer_properties(config: Config, worker_index: int) -> dict[str, str]:
    """Producer properties; exactly-once adds a transactional id stable per worker."""
    props = dict(config.kafka.producer)
    if config.delivery.mode == "exactly_once":
        default_id = f"{config.kafka.group_id}-{socket.gethostname()}-{worker_index}"
        props.setdefault("transactional.id", config.delivery.transactional_id or default_id)
    return props


def load_models(config: Config) -> ModelRegistry:
    return ModelRegistry.from_directory(
        config.path(config.models.directory), config.models.default_model, config.models.shadow
    )


def publish_model_info(models: ModelRegistry, metrics: Metrics) -> None:
    """``stream_scorer_model_info`` for every model served at start-up."""
    for model in models.all():
        metrics.model_info.labels(model.name, model.version).set(1)


def build_processor(
    config: Config,
    schemas: SchemaRegistry,
    models: ModelRegistry,
    scorer: Scorer,
    fetcher: BatchFetcher,
    clock: Clock,
) -> BatchProcessor:
    """The batch processor over ``schemas`` with the configured limits and delivery settings."""
    return BatchProcessor(
        decoder=JobDecoder(schemas),
        encoder=RankedListEncoder(schemas, config.schemas.ranked_schema_id),
        models=models,
        scorer=scorer,
        fetcher=fetcher,
        clock=clock,
        limits=config.limits,
        delivery=config.delivery,
    )


def build_schema_registry(config: Config) -> SchemaRegistry:
    if config.schemas.registry_url:
        return HttpSchemaRegistry(config.schemas.registry_url)
    return StaticRegistry(
        {
            config.schemas.job_schema_id: load_bundled("ScoringJob"),
            config.schemas.ranked_schema_id: load_bundled("RankedList"),
        }
    )


def build_feature_source(config: Config, metrics: Metrics, clock: Clock) -> FeatureSource:
    """The configured feature source: the embedded file store, or the HTTP feature server."""
    f = config.features
    if f.source == "http":
        return HttpFeatureSource.from_config(f, metrics, clock, config.path)
    return SnapshotStore.open(
        config.path(f.users_file) if f.users_file else None,
        config.path(f.items_file) if f.items_file else None,
        f.snapshot_format,
    )


def build_scorer(models: ModelRegistry, features: FeatureSource) -> PreparedScorer:
    """The stream path's kernel, its per-item state of the embedded item snapshot already built
    for every served model (before the fork with ``--workers N``, so the workers share it)."""
    scorer = PreparedScorer()
    if isinstance(features, SnapshotStore) and len(features.items):
        warm(scorer, models.all(), features.items)
    return scorer
