"""Wiring: every part the service and the ranking API are made of, built from one `Config`.

Only this module (and the entry points above it: `consumer.service`, `consumer.api.server`,
`consumer.workers`, the CLI) knows how the parts fit together; each part takes its collaborators
as arguments, so tests assemble the same parts around fakes. It imports neither the service nor
the API, so both can build on it without an import cycle.
"""

from __future__ import annotations

import socket
import ssl

from consumer.clock import Clock
from consumer.config import Config, client_properties, read_secret_file
from consumer.errors import ConfigError, StartupError
from consumer.features.fetcher import BatchFetcher
from consumer.features.http import HttpFeatureSource
from consumer.features.prepared import PreparedScorer, warm
from consumer.features.snapshot import SnapshotStore
from consumer.features.source import FeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.stream.processor import BatchProcessor
from consumer.telemetry.health import (
    FEATURE_STORE,
    SCHEMA_REGISTRY,
    DependencyState,
    ObservedRegistry,
)
from schemas.errors import RegistryError, UnknownSchemaIdError
from schemas.registry import HttpSchemaRegistry, SchemaRegistry, StaticRegistry, load_bundled
from schemas.registry_auth import RegistryAuth, registry_ssl_context, split_user_info
from schemas.serde import JobDecoder, RankedListEncoder
from scoring.kernel import Scorer


def kafka_secrets(config: Config) -> dict[str, str]:
    """The values of ``[kafka.secret_files]``, read now (paths relative to the config file)."""
    return {
        prop: read_secret_file(config.path(path), f"kafka.secret_files.{prop}")
        for prop, path in config.kafka.secret_files.items()
    }


def kafka_properties(config: Config, client: str = "") -> dict[str, str]:
    """librdkafka properties of a ``consumer``, ``producer`` or (``""``) admin/tool client:
    ``[kafka.common]``, the secret files, then the client's own section."""
    return client_properties(config.kafka, client, kafka_secrets(config))


def transactional_id(config: Config, worker_index: int) -> str:
    """The worker's transactional id: ``delivery.transactional_id``, else
    ``<group>-<hostname>-<index>`` (stable across restarts). Forked workers of ``--workers N``
    get distinct configured ids from `consumer.workers.worker_config`."""
    configured = config.delivery.transactional_id
    return configured or f"{config.kafka.group_id}-{socket.gethostname()}-{worker_index}"


def producer_properties(config: Config, worker_index: int) -> dict[str, str]:
    """Producer properties; exactly-once adds the worker's transactional id."""
    props = kafka_properties(config, "producer")
    if config.delivery.mode == "exactly_once":
        props["transactional.id"] = transactional_id(config, worker_index)
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
        encoder=ranked_encoder(config, schemas),
        models=models,
        scorer=scorer,
        fetcher=fetcher,
        clock=clock,
        limits=config.limits,
        delivery=config.delivery,
    )


def ranked_encoder(config: Config, schemas: SchemaRegistry) -> RankedListEncoder:
    """The output encoder; resolving its writer schema is the first registry call at start-up."""
    key = "schemas.ranked_schema_id"
    try:
        return RankedListEncoder(schemas, config.schemas.ranked_schema_id)
    except RegistryError as exc:
        raise StartupError(str(exc), key="schemas.registry_url") from exc
    except UnknownSchemaIdError as exc:
        raise ConfigError(f"the registry has no schema under this id: {exc}", key=key) from exc


def build_schema_registry(
    config: Config, metrics: Metrics | None = None, clock: Clock | None = None
) -> SchemaRegistry:
    """The static registry, or the HTTP one (observed as a dependency when given `metrics`)."""
    s = config.schemas
    if s.registry_url:
        remote = HttpSchemaRegistry(
            s.registry_url, s.timeout_ms / 1000,
            auth=registry_auth(config), ssl_context=registry_tls(config),
        )  # fmt: skip
        if metrics is None or clock is None:
            return remote
        return ObservedRegistry(remote, DependencyState(SCHEMA_REGISTRY, metrics, clock))
    return StaticRegistry(
        {
            config.schemas.job_schema_id: load_bundled("ScoringJob"),
            config.schemas.ranked_schema_id: load_bundled("RankedList"),
        }
    )


def feature_store_state(config: Config, metrics: Metrics, clock: Clock) -> DependencyState | None:
    """The ``feature_store`` dependency state: only a remote store is one."""
    if config.features.source != "http":
        return None
    return DependencyState(FEATURE_STORE, metrics, clock)


def build_feature_source(config: Config, metrics: Metrics, clock: Clock) -> FeatureSource:
    """The configured feature source: the embedded file store, or the HTTP feature server."""
    f = config.features
    if f.source == "http":
        token_file = config.path(f.token_file) if f.token_file else None
        if token_file is not None and not token_file.is_file():
            raise ConfigError(f"no such file: {token_file}", key="features.token_file")
        return HttpFeatureSource.from_config(f, metrics, clock, config.path)
    return SnapshotStore.open(
        config.path(f.users_file) if f.users_file else None,
        config.path(f.items_file) if f.items_file else None,
        f.snapshot_format,
    )


def registry_auth(config: Config) -> RegistryAuth | None:
    """The configured registry credentials: basic auth or a bearer token, at most one source.

    Credentials left in ``registry_url`` are handled by the client itself (basic auth)."""
    s = config.schemas
    given = {
        "schemas.registry_url (user info)": split_user_info(s.registry_url)[1] is not None,
        "schemas.basic_auth_user_info": bool(s.basic_auth_user_info),
        "schemas.basic_auth_file": bool(s.basic_auth_file),
        "schemas.token": bool(s.token),
        "schemas.token_file": bool(s.token_file),
    }
    chosen = [key for key, present in given.items() if present]
    if len(chosen) > 1:
        raise ConfigError(f"choose one registry credential, got {chosen}", key=chosen[1])
    if s.basic_auth_user_info or s.basic_auth_file:
        file = config.path(s.basic_auth_file) if s.basic_auth_file else None
        return RegistryAuth.basic(s.basic_auth_user_info, file)
    if s.token or s.token_file:
        return RegistryAuth.bearer(s.token, config.path(s.token_file) if s.token_file else None)
    return None


def registry_tls(config: Config) -> ssl.SSLContext | None:
    s = config.schemas

    def path(value: str) -> str:
        return str(config.path(value)) if value else ""

    try:
        return registry_ssl_context(path(s.ca_file), path(s.client_cert), path(s.client_key))
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"invalid TLS material: {reason}", key="schemas.ca_file") from exc


def build_scorer(models: ModelRegistry, features: FeatureSource) -> PreparedScorer:
    """The stream path's kernel, its per-item state of the embedded item snapshot already built
    for every served model (before the fork with ``--workers N``, so the workers share it)."""
    scorer = PreparedScorer()
    if isinstance(features, SnapshotStore) and len(features.items):
        warm(scorer, models.all(), features.items)
    return scorer
