"""The stream service: one scorer worker, its Kafka loop on the calling thread and its async side
work (remote feature fetches, the ops server, the optional ranking API) on one `AsyncBridge`.

Built from one `Config` through `consumer.wiring`; the ranking API beside the loop shares the
service's models, feature fetcher and metrics registry. Its dependencies (the Kafka cluster, and
a schema registry or feature server when configured) each have a `DependencyState`; the Kafka
one gates readiness and, past ``kafka.unreachable_exit_s``, ends the run.
"""

from __future__ import annotations

import logging
import threading

from aiohttp import web
from prometheus_client import CollectorRegistry

from consumer.aio import AsyncBridge
from consumer.api.server import RankingApi
from consumer.clock import Clock, SystemClock
from consumer.config import Config
from consumer.errors import StartupError
from consumer.features.fetcher import FeatureFetcher
from consumer.features.prepared import PreparedScorer
from consumer.features.snapshot import SnapshotStore
from consumer.features.snapshot_watch import SnapshotWatcher, publish_loaded
from consumer.features.source import FeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.models.watch import ModelWatcher
from consumer.ops import build_app, start_server
from consumer.stream.connection import BrokerWatch, ClientFacts
from consumer.stream.kafka import KafkaSink, KafkaSource
from consumer.stream.kafka_health import KafkaHealth, identity_of
from consumer.stream.loop import LoopState, ScoringLoop
from consumer.stream.records import RebalanceHook, Source
from consumer.stream.tracing import StreamTracing
from consumer.telemetry.health import KAFKA, DependencyState
from consumer.telemetry.tracing import build_spans
from consumer.wiring import (
    build_feature_source,
    build_processor,
    build_schema_registry,
    build_scorer,
    feature_store_state,
    kafka_properties,
    load_models,
    producer_properties,
    publish_model_info,
)
from scoring.features import ItemTable

log = logging.getLogger(__name__)


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
        scorer: PreparedScorer | None = None,
    ) -> None:
        self.config = config
        self.worker_index = worker_index
        self.clock = clock or SystemClock()
        self.metrics = Metrics(registry or CollectorRegistry())
        self.models = models or load_models(config)
        publish_model_info(self.models, self.metrics)
        self.features = features or build_feature_source(config, self.metrics, self.clock)
        if isinstance(self.features, SnapshotStore):
            publish_loaded(self.features, self.metrics)
        self.scorer = scorer or build_scorer(self.models, self.features)
        self.bridge = AsyncBridge()
        self.fetcher = FeatureFetcher(
            self.features, self.bridge.loop, feature_store_state(config, self.metrics, self.clock)
        )
        schemas = build_schema_registry(config, self.metrics, self.clock)
        self.processor = build_processor(
            config, schemas, self.models, self.scorer, self.fetcher, self.clock
        )
        self.kafka = DependencyState(KAFKA, self.metrics, self.clock)
        self._facts = (ClientFacts("consumer"), ClientFacts("producer"))
        self.state = LoopState()
        self.spans = build_spans(config.tracing, worker_index)  # None unless tracing.spans
        self.tracing = StreamTracing(config.tracing, self.metrics, self.spans)
        self.kafka_health = KafkaHealth(
            self.clock, self.metrics, config.kafka.auth_failure_exit_s,
            identity_of(kafka_properties(config, "consumer")),
        )  # fmt: skip
        self.http_port: int | None = None
        self._http_runner: web.AppRunner | None = None

    def _make_source(self, on_assign: RebalanceHook, on_revoke: RebalanceHook) -> Source:
        k = self.config.kafka
        return KafkaSource(
            k.bootstrap_servers, k.group_id, k.input_topic,
            kafka_properties(self.config, "consumer"), on_assign, on_revoke, self.kafka_health,
            self._facts[0],
        )  # fmt: skip

    def start_http(self) -> int:
        """Serve /metrics, /healthz and /readyz; returns the bound port."""
        app = build_app(self.metrics.registry, self.state, self.clock, lambda: True)
        server = self.config.server
        self._http_runner, self.http_port = self.bridge.call(
            start_server(app, server.host, server.port, key="server.port"), 10.0
        )
        log.info("serving metrics and health on http://%s:%d", server.host, self.http_port)
        return self.http_port

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, then flush, commit, leave the group and clean up.

        Beside the loop: the model and snapshot watchers (hot reload) and, when enabled, the
        ranking API.
        """
        k = self.config.kafka
        watcher = ModelWatcher(self.models, self.metrics, self.config.models.reload_interval_s)
        snapshots = self.snapshot_watcher()
        api: RankingApi | None = None
        try:
            sink = KafkaSink(
                k.bootstrap_servers, producer_properties(self.config, self.worker_index),
                self.kafka_health, self._facts[1],
            )  # fmt: skip
            watch = BrokerWatch(
                *self._facts, self.kafka, self.metrics, self.clock, k.unreachable_exit_s,
                k.bootstrap_servers,
            )  # fmt: skip
            loop = ScoringLoop(
                self.config, self._make_source, sink, self.processor, self.metrics, self.clock,
                self.state, overlap_fetch=self.fetcher.remote, tracing=self.tracing, watch=watch,
            )  # fmt: skip
            watcher.start()
            if snapshots is not None:
                snapshots.start()
            if self.config.api.enabled:
                api = self.start_api()
            loop.run(stop)
        finally:
            watcher.stop()
            if snapshots is not None:
                snapshots.stop()
            if api is not None:  # in-flight API batches finish before the features close
                self.stop_api(api)
            self.close()

    def snapshot_watcher(self) -> SnapshotWatcher | None:
        """The hot reload of the embedded store's snapshot files (None for other sources); a new
        item snapshot's kernel state is prepared for every served model before it is swapped in."""
        if not isinstance(self.features, SnapshotStore):
            return None

        def prepare(items: ItemTable) -> None:
            self.scorer.prepare(self.models.all(), items)

        interval = self.config.features.snapshot_reload_interval_s
        return SnapshotWatcher(self.features, self.metrics, self.clock, interval, prepare)

    def start_api(self) -> RankingApi:
        """Serve the ranking API on the bridge's event loop, beside the Kafka loop."""
        api = RankingApi.create(self.config, self.models, self.fetcher, self.metrics, self.clock,
                                spans=self.spans)  # fmt: skip
        cfg = self.config.api
        try:
            self.bridge.call(api.start(cfg.host, cfg.port), 10.0)
        except StartupError as exc:
            raise StartupError(exc.reason, key=exc.key or "api.port") from exc
        return api

    def stop_api(self, api: RankingApi) -> None:
        """Stop serving (in-flight batches finish); call before the features close."""
        self.bridge.call(api.stop(), 15.0)

    def close(self) -> None:
        if self._http_runner is not None:
            self.bridge.call(self._http_runner.cleanup(), 10.0)
            self._http_runner = None
        self.bridge.call(self.features.close(), 10.0)
        self.bridge.close()
        if self.spans is not None:
            self.spans.shutdown()
