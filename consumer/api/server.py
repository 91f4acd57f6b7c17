"""The synchronous ranking API: ``POST /v1/rank`` ranks one user's candidates now.

For callers that cannot wait for a stream (a feed builder assembling a page). Requests are
coalesced into micro-batches (`consumer.api.batcher`) and scored by the stream path's
`BatchProcessor.score_columns`: same validation, model routing, feature source and kernel, so a
job gets the same ranking over HTTP as over Kafka.

Status codes follow the stream path's error taxonomy: 400 for a body that can never be scored
(``decode``/``invalid``, with the reason), 404 for a model that is not served, 415 for an
unsupported content type, 503 with ``Retry-After`` when the feature store is unavailable under
the ``pause`` policy (or the server is stopping), 504 when a request's deadline passes first.

Authentication (`consumer.api.auth`): with ``api.tokens_file`` every ``/v1/rank`` request needs
``Authorization: Bearer <token>`` (401 otherwise); the API refuses to listen beyond loopback
without it unless ``api.allow_unauthenticated`` is set. ``/metrics`` and the probes stay open.

Two ways to run it, both on the same `Metrics` registry (requests labelled by path):

- beside the Kafka loop: `consumer.service.Service` starts it on its event-loop thread with the
  service's models and feature fetcher, and stops it before closing its feature source;
- alone: `serve(config, stop)` (``stream-scorer serve``), which also answers ``/metrics``,
  ``/healthz`` and ``/readyz`` (`consumer.ops`) on the API's port and reloads models like the loop
  does.

Built from the config through `consumer.wiring`, like the stream service; it never imports the
service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from consumer.api.auth import TokenFile, bearer_middleware, check_exposure
from consumer.api.batcher import Answer, Failure, MicroBatcher, SerializedScorer
from consumer.api.codec import AVRO_TYPES, JSON_TYPES, RankRequest, parse_avro, parse_json, render
from consumer.api.tracing import HttpTracing
from consumer.clock import Clock, SystemClock
from consumer.config import ApiConfig, Config, TracingConfig
from consumer.errors import PoisonMessageError, TransportError
from consumer.features.fetcher import FeatureFetcher
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.models.watch import ModelWatcher
from consumer.ops import add_ops_routes, start_server
from consumer.stream.processor import BatchProcessor
from consumer.telemetry.logs import log_context
from consumer.telemetry.tracing import Spans, build_spans
from consumer.wiring import (
    build_feature_source,
    build_processor,
    build_schema_registry,
    load_models,
    publish_model_info,
)
from schemas.serde import JobDecoder
from scoring.kernel import Scorer

log = logging.getLogger(__name__)

RANK_PATH = "/v1/rank"
TIMEOUT_HEADER = "X-Request-Timeout-Ms"  # a caller may shorten (never extend) its deadline
DEFAULT_TIMEOUT_MS = 1_000
WORKERS = 4  # batches in flight: concurrent feature fetches; kernel calls stay serialized


class RankingApi:
    """The ``/v1/rank`` handler around one `MicroBatcher`; `build_app` or `start` to serve it."""

    def __init__(
        self,
        processor: BatchProcessor,
        fetcher: FeatureFetcher,
        decoder: JobDecoder,
        metrics: Metrics,
        clock: Clock,
        config: ApiConfig,
        models: ModelRegistry | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        retry_after_s: int = 1,
        tracing: HttpTracing | None = None,
        tokens: TokenFile | None = None,
    ) -> None:
        self._tracing = tracing or HttpTracing(TracingConfig(), metrics)
        self._tokens = tokens
        self._allow_unauthenticated = config.allow_unauthenticated
        self.batcher = MicroBatcher(processor, metrics, config.max_wait_ms / 1000,
                                    config.max_batch_jobs, WORKERS, retry_after_s)  # fmt: skip
        self._fetcher = fetcher
        self._decoder = decoder
        self._metrics = metrics
        self._clock = clock
        self._models = models
        self._timeout_ms = timeout_ms
        self._retry_after_s = retry_after_s
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # bound by `start`

    @classmethod
    def create(
        cls,
        config: Config,
        models: ModelRegistry,
        fetcher: FeatureFetcher,
        metrics: Metrics,
        clock: Clock,
        scorer: Scorer | None = None,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        spans: Spans | None = None,
    ) -> RankingApi:
        """The API over `models` and `fetcher` with its own kernel (one `Scorer` per thread);
        request spans on `spans` when tracing spans are on."""
        schemas = build_schema_registry(config)
        processor = build_processor(
            config, schemas, models, scorer or SerializedScorer(), fetcher, clock
        )
        tracing = HttpTracing(config.tracing, metrics, spans)
        tokens = TokenFile(config.path(config.api.tokens_file)) if config.api.tokens_file else None
        if tokens is not None:
            tokens.load()  # fail at start-up, not on the first request
        return cls(processor, fetcher, JobDecoder(schemas), metrics, clock, config.api, models,
                   timeout_ms, config.features.breaker_reset_s, tracing, tokens)  # fmt: skip

    def build_app(self, ops: bool = False) -> web.Application:
        """The application; ``ops`` adds /metrics, /healthz and /readyz (standalone serving)."""
        guard = [] if self._tokens is None else [
            bearer_middleware(self._tokens, frozenset({RANK_PATH}), self._metrics)
        ]  # fmt: skip
        app = web.Application(middlewares=guard)
        app.router.add_post(RANK_PATH, self._rank)
        if ops:
            add_ops_routes(app, self._metrics.registry, self._alive, self._ready)

        async def on_startup(_app: web.Application) -> None:
            self._fetcher.bind(asyncio.get_running_loop())
            await self.batcher.start()

        async def on_cleanup(_app: web.Application) -> None:
            await self.batcher.stop()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    async def start(self, host: str, port: int, ops: bool = False) -> int:
        """Serve on the running loop; returns the bound port (``port`` 0 picks a free one)."""
        check_exposure(host, self._tokens is not None, self._allow_unauthenticated)
        self._runner, self.port = await start_server(self.build_app(ops), host, port)
        auth = "bearer tokens" if self._tokens is not None else "no authentication"
        log.info("ranking API on http://%s:%d%s (%s)", host, self.port, RANK_PATH, auth)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _rank(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        trace = self._tracing.begin(request.headers.items(), RANK_PATH)
        with log_context(**trace.log_fields()):
            status, body, headers = await self._answer(request, started)
        headers.update(trace.response_headers())
        self._metrics.api_requests.labels(RANK_PATH, str(status)).inc()
        self._metrics.api_request_seconds.labels(RANK_PATH).observe(time.monotonic() - started)
        trace.end(status, _span_attributes(body))
        return web.json_response(body, status=status, headers=headers)

    async def _answer(
        self, request: web.Request, started: float
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            timeout_ms = self._deadline_ms(request)
            parsed = await self._parse(request)
        except _Refused as refused:
            return _failure(None, refused.failure)
        answer = await self.batcher.submit(parsed, started + timeout_ms / 1000)
        if answer.failure is not None or answer.ranked is None:
            return _failure(
                parsed.request_id, answer.failure or Failure(500, "internal", "no answer")
            )
        timings = _timings_ms(answer, time.monotonic() - started)
        return 200, render(parsed, answer.ranked, timings), {}

    def _deadline_ms(self, request: web.Request) -> int:
        raw = request.headers.get(TIMEOUT_HEADER)
        if raw is None:
            return self._timeout_ms
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise _Refused(Failure(400, "decode", f"{TIMEOUT_HEADER} must be a positive integer"))
        return min(int(raw), self._timeout_ms)

    async def _parse(self, request: web.Request) -> RankRequest:
        kind = request.content_type
        if kind not in JSON_TYPES | AVRO_TYPES:
            accepted = ", ".join(sorted(JSON_TYPES | AVRO_TYPES))
            raise _Refused(Failure(415, "unsupported_media_type", f"use one of: {accepted}"))
        body = await request.read()
        try:
            if kind in JSON_TYPES:
                return parse_json(body, self._clock.now_ms())
            return parse_avro(self._decoder, body)
        except PoisonMessageError as exc:
            raise _Refused(Failure(400, exc.kind, exc.reason)) from exc
        except TransportError as exc:
            raise _Refused(Failure(503, "unavailable", str(exc), self._retry_after_s)) from exc

    def _alive(self) -> tuple[bool, dict[str, object]]:
        alive = self.batcher.running
        return alive, {"status": "ok" if alive else "stopped"}

    def _ready(self) -> tuple[bool, dict[str, object]]:
        loaded = self._models is not None and bool(self._models.all())
        ready = loaded and self.batcher.running
        return ready, {"ready": ready, "models_loaded": loaded}


class _Refused(Exception):
    """A request answered before it reaches the batcher."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def _span_attributes(body: dict[str, Any]) -> dict[str, str | float]:
    """What a request span records of its answer: ids, model, error, stage times."""
    out: dict[str, str | float] = {}
    for key in ("request_id", "model", "model_version", "error"):
        if body.get(key) is not None:
            out[f"scorer.{key}"] = str(body[key])
    for stage, ms in body.get("timings_ms", {}).items():
        out[f"scorer.{stage}_ms"] = float(ms)
    return out


def _timings_ms(answer: Answer, total_s: float) -> dict[str, float]:
    seconds = {"queue": answer.queue_s, "features": answer.features_s,
               "score": answer.score_s, "total": total_s}  # fmt: skip
    return {k: v * 1000 for k, v in seconds.items()}


def _failure(
    request_id: str | None, failure: Failure
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"request_id": request_id, "error": failure.kind, "reason": failure.reason}
    headers = {}
    if failure.retry_after_s is not None:
        headers["Retry-After"] = str(failure.retry_after_s)
    return failure.status, body, headers


def serve(
    config: Config,
    stop: threading.Event,
    registry: CollectorRegistry | None = None,
    on_started: Callable[[int], None] | None = None,
) -> None:
    """Run the API alone until `stop` is set (``stream-scorer serve``)."""
    clock = SystemClock()
    metrics = Metrics.for_api(registry or CollectorRegistry(), config.features.source == "http")
    models = load_models(config)
    publish_model_info(models, metrics)
    watcher = ModelWatcher(models, metrics, config.models.reload_interval_s)
    watcher.start()
    try:
        asyncio.run(_serve(config, stop, models, metrics, clock, on_started))
    finally:
        watcher.stop()


async def _serve(
    config: Config,
    stop: threading.Event,
    models: ModelRegistry,
    metrics: Metrics,
    clock: Clock,
    on_started: Callable[[int], None] | None,
) -> None:
    features = build_feature_source(config, metrics, clock)
    spans = build_spans(config.tracing)
    api = RankingApi.create(config, models, FeatureFetcher(features), metrics, clock, spans=spans)
    try:
        port = await api.start(config.api.host, config.api.port, ops=True)
        if on_started is not None:
            on_started(port)
        # `stop` is a threading.Event (set by a signal handler or another thread): poll it
        while not stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    finally:
        await api.stop()
        await features.close()
        if spans is not None:
            await asyncio.to_thread(spans.shutdown)
