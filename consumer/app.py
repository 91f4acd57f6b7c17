"""Wiring: build every part of the service from one `Config`, run it, and tear it down.

Only this module (and the CLI above it) knows how the parts fit together; each part takes its
collaborators as arguments, so tests assemble the same parts around fakes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import Future

import numpy as np
from aiohttp import web
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry

from consumer.aio import AsyncBridge
from consumer.clock import Clock, SystemClock
from consumer.config import Config
from consumer.features import (
    BatchFeatures,
    FeatureSource,
    FileFeatureStore,
    InMemoryFeatureSource,
)
from consumer.http_features import HttpFeatureSource
from consumer.http_server import build_app, start_server
from consumer.kafka_io import KafkaSink, KafkaSource, RebalanceHook
from consumer.metrics import Metrics
from consumer.model_watch import ModelWatcher
from consumer.models import ModelRegistry
from consumer.pipeline import BatchProcessor, FetchFeatures, StartFetch
from consumer.runner import LoopState, ScoringLoop, Source
from schemas.registry import HttpSchemaRegistry, SchemaRegistry, StaticRegistry, load_bundled
from schemas.serde import JobDecoder, RankedListEncoder
from scoring.kernel import Scorer

log = logging.getLogger(__name__)

FEATURE_TIMEOUT_S = 5.0


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


def build_processor(
    config: Config,
    schemas: SchemaRegistry,
    models: ModelRegistry,
    scorer: Scorer,
    fetch_features: FetchFeatures,
    clock: Clock,
    start_fetch: StartFetch | None = None,
) -> BatchProcessor:
    """The batch processor over ``schemas`` with the configured limits and delivery settings."""
    return BatchProcessor(
        decoder=JobDecoder(schemas),
        encoder=RankedListEncoder(schemas, config.schemas.ranked_schema_id),
        models=models,
        scorer=scorer,
        fetch_features=fetch_features,
        clock=clock,
        limits=config.limits,
        delivery=config.delivery,
        start_fetch=start_fetch,
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
    return FileFeatureStore.from_files(
        config.path(f.users_file) if f.users_file else None,
        config.path(f.items_file) if f.items_file else None,
    )


class Service:
    """One scorer: Kafka loop on the calling thread, async side work on a bridge thread."""

    def __init__(
        self,
        config: Config,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        worker_index: int = 0,
        models: ModelRegistry | None = None,
        features: FeatureSource | None = None,
    ) -> None:
        self.config = config
        self.worker_index = worker_index
        self.clock = clock or SystemClock()
        self.metrics = Metrics(registry or CollectorRegistry())
        self.models = models or load_models(config)
        for model in self.models.all():
            self.metrics.model_info.labels(model.name, model.version).set(1)
        self.features = features or build_feature_source(config, self.metrics, self.clock)
        self.bridge = AsyncBridge()
        self.processor = build_processor(
            config, build_schema_registry(config), self.models, Scorer(), self._fetch, self.clock,
            start_fetch=self._start_fetch if config.features.source == "http" else None,
        )  # fmt: skip
        self.state = LoopState()
        self.http_port: int | None = None
        self._http_runner: web.AppRunner | None = None

    def _fetch(self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]) -> BatchFeatures:
        if isinstance(self.features, InMemoryFeatureSource):
            # No I/O to overlap: a hop through the event loop thread cost ~0.3 ms per batch.
            return self.features.fetch_now(user_ids, item_ids)
        return self.bridge.call(self.features.fetch(user_ids, item_ids), FEATURE_TIMEOUT_S)

    def _start_fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> Future[BatchFeatures]:
        return asyncio.run_coroutine_threadsafe(
            self.features.fetch(user_ids, item_ids), self.bridge.loop
        )

    def _make_source(self, on_assign: RebalanceHook, on_revoke: RebalanceHook) -> Source:
        k = self.config.kafka
        return KafkaSource(
            k.bootstrap_servers, k.group_id, k.input_topic, k.consumer, on_assign, on_revoke
        )

    def start_http(self) -> int:
        """Serve /metrics, /healthz and /readyz; returns the bound port."""
        app = build_app(self.metrics.registry, self.state, self.clock, lambda: True)
        server = self.config.server
        self._http_runner, self.http_port = self.bridge.call(
            start_server(app, server.host, server.port), 10.0
        )
        log.info("serving metrics and health on http://%s:%d", server.host, self.http_port)
        return self.http_port

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, then flush, commit, leave the group and clean up.

        Beside the loop: the model watcher (hot reload) and, when enabled, the ranking API.
        """
        k = self.config.kafka
        watcher = ModelWatcher(self.models, self.metrics, self.config.models.reload_interval_s)
        api = None
        try:
            sink = KafkaSink(
                k.bootstrap_servers, producer_properties(self.config, self.worker_index)
            )
            loop = ScoringLoop(
                self.config, self._make_source, sink, self.processor, self.metrics, self.clock,
                self.state, pipelined=self.config.features.source == "http",
            )  # fmt: skip
            watcher.start()
            if self.config.api.enabled:
                from consumer.api import start_beside  # the API builds on this module

                api = start_beside(self)
            loop.run(stop)
        finally:
            watcher.stop()
            if api is not None:
                from consumer.api import stop_beside

                stop_beside(self, api)
            self.close()

    def close(self) -> None:
        if self._http_runner is not None:
            self.bridge.call(self._http_runner.cleanup(), 10.0)
            self._http_runner = None
        self.bridge.call(self.features.close(), 10.0)
        self.bridge.close()
