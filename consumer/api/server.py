"""The synchronous ranking API: ``POST /v1/rank`` ranks one user's candidates now.

For callers that cannot wait for a stream (a feed builder assembling a page). Each request is
read and checked alone (`consumer.api.intake`, `consumer.api.codec`), then coalesced into
micro-batches (`consumer.api.batcher`) scored by the stream path's
`BatchProcessor.score_columns`: same validation, model routing, feature source and kernel, so a
job gets the same ranking over HTTP as over Kafka. The listener bounds connections and the time
each part of a request may take (`consumer.api.connections`).

Status codes follow the stream path's error taxonomy: 400 for a body that can never be scored
(``decode``/``invalid``, with the reason), 404 for a model that is not served, 405 for a method
other than POST, 408 when the body does not arrive within the request's deadline, 413 for a body
over `MAX_BODY_BYTES`, 415 for an unsupported content type, 503 with ``Retry-After`` when the
feature store is unavailable under the ``pause`` policy (or the server is stopping), 504 when a
request's deadline passes first, and 500 ``internal error`` for a fault of the server: its body
names the request id, and the log line with the details names it too (exception text never
reaches a caller). Every answer on ``/v1/rank``, whatever its status, is counted in
``stream_scorer_api_requests_total``; a client gone before its answer is logged at debug and
counted in ``stream_scorer_api_client_disconnects_total``, never logged as an error.

Two ways to run it, both on the same `Metrics` registry (requests labelled by path):

- beside the Kafka loop: `consumer.service.Service` starts it on its event-loop thread with the
  service's models and feature fetcher, and stops it before closing its feature source;
- alone: `serve(config, stop)` (``stream-scorer serve``), on uvloop where it is installed, which
  also answers ``/metrics``, ``/healthz`` and ``/readyz`` (`consumer.ops`) on the API's port and
  reloads models like the loop does.

Built from the config through `consumer.wiring`, like the stream service; it never imports the
service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from consumer.api.auth import TokenFile, bearer_middleware, check_exposure
from consumer.api.batcher import INTERNAL, Answer, Failure, MicroBatcher, SerializedScorer
from consumer.api.codec import MAX_BODY_BYTES, new_request_id, render, render_error
from consumer.api.connections import ConnectionLimits, start_guarded, track_requests
from consumer.api.intake import Intake, Refused, deadline_ms
from consumer.api.tracing import HttpTracing
from consumer.clock import Clock, SystemClock
from consumer.config import ApiConfig, Config, TracingConfig
from consumer.features.fetcher import FeatureFetcher
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.models.watch import ModelWatcher
from consumer.ops import add_ops_routes
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
DEFAULT_TIMEOUT_MS = 1_000
WORKERS = 4  # batches in flight with a remote feature source: concurrent fetches
JSON_HEADERS = {"Content-Type": "application/json"}
ANSWER_TIMEOUT_S = 10.0  # an answer the client leaves unread this long closes its connection

Reply = tuple[int, bytes, dict[str, str]]  # status, JSON body, extra headers


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
        remote = fetcher.remote  # in-memory features: all CPU work, one batch at a time
        self.batcher = MicroBatcher(
            processor, metrics, config.max_wait_ms / 1000, config.max_batch_jobs,
            slots=WORKERS if remote else 1, retry_after_s=retry_after_s, inline=not remote,
        )  # fmt: skip
        self._fetcher = fetcher
        self._intake = Intake(decoder, clock, retry_after_s)
        self._metrics = metrics
        self._models = models
        self._limits = ConnectionLimits(
            config.max_connections, config.idle_timeout_s, config.header_timeout_s
        )
        self._timeout_ms = timeout_ms
        self._runner: web.AppRunner | None = None
        self._latency = metrics.api_request_seconds.labels(RANK_PATH)
        self._answered: dict[int, Counter] = {}  # status -> its api_requests child
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
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[track_requests, *guard])
        app.router.add_route("*", RANK_PATH, self._rank)  # every method: every answer counted
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
        app = self.build_app(ops)
        self._runner, self.port = await start_guarded(app, host, port, self._limits,
                                                      self._metrics)  # fmt: skip
        auth = "bearer tokens" if self._tokens is not None else "no authentication"
        log.info("ranking API on http://%s:%d%s (%s)", host, self.port, RANK_PATH, auth)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _rank(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        trace = self._tracing.begin(request.headers.items(), RANK_PATH)
        try:
            with log_context(**trace.log_fields()):
                status, body, headers = await self._answer(request, started)
        except ConnectionError:  # the client went away while sending its request
            trace.end(499, {})
            return self._gone(request, "request")
        except Exception:
            error_id = new_request_id()
            log.exception("ranking API request %s failed", error_id)
            status, body, headers = _reply(error_id, Failure(500, "internal", INTERNAL))
        self._count(status)
        self._latency.observe(time.monotonic() - started)
        headers = {**(headers or JSON_HEADERS), **trace.response_headers()}
        if trace.span is not None:
            trace.end(status, _span_attributes(body))
        response = web.Response(body=body, status=status, headers=headers)
        if status == 408:  # the rest of its body may still come: the connection cannot be reused
            response.force_close()
        transport = request.transport
        if transport is None:  # gone while its request was ranked
            return self._gone(request, "answer")
        try:
            if not transport.get_write_buffer_size():  # nothing queued: writing cannot block
                await _write(request, response)
            else:  # the client is behind on reading its answers: give it a bound
                async with asyncio.timeout(ANSWER_TIMEOUT_S):
                    await _write(request, response)
        except (ConnectionError, TimeoutError):
            request.protocol.force_close()  # whatever aiohttp writes next fails, not interleaves
            return self._gone(request, "answer")
        return response

    def _count(self, status: int) -> None:
        counter = self._answered.get(status)
        if counter is None:
            counter = self._answered[status] = self._metrics.api_requests.labels(
                RANK_PATH, str(status)
            )
        counter.inc()

    def _gone(self, request: web.Request, stage: str) -> web.Response:
        self._metrics.api_client_disconnects.labels(stage).inc()
        log.debug("ranking API client %s went away before its answer (%s)", request.remote, stage)
        return web.Response(status=499)  # never written: the connection is closed

    async def _answer(self, request: web.Request, started: float) -> Reply:
        try:
            deadline = started + deadline_ms(request, self._timeout_ms) / 1000
            parsed = await self._intake.read(request, deadline)
        except Refused as refused:
            return _reply(None, refused.failure, refused.headers)
        try:
            answer = await self.batcher.submit(parsed, deadline)
            if answer.ranked is None:
                return _reply(
                    parsed.request_id, answer.failure or Failure(500, "internal", INTERNAL)
                )
            timings = _timings_ms(answer, time.monotonic() - started)
            return 200, render(parsed, answer.ranked, timings), {}
        except Exception:
            log.exception("ranking API request %r failed", parsed.request_id)
            return _reply(parsed.request_id, Failure(500, "internal", INTERNAL))

    def _alive(self) -> tuple[bool, dict[str, object]]:
        alive = self.batcher.running
        return alive, {"status": "ok" if alive else "stopped"}

    def _ready(self) -> tuple[bool, dict[str, object]]:
        loaded = self._models is not None and bool(self._models.all())
        ready = loaded and self.batcher.running
        return ready, {"ready": ready, "models_loaded": loaded}


def _span_attributes(body: bytes) -> dict[str, str | float]:
    """What a request span records of its answer: ids, model, error, stage times."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    out: dict[str, str | float] = {}
    for key in ("request_id", "model", "model_version", "error"):
        if answer.get(key) is not None:
            out[f"scorer.{key}"] = str(answer[key])
    for stage, ms in (answer.get("timings_ms") or {}).items():
        out[f"scorer.{stage}_ms"] = float(ms)
    return out


async def _write(request: web.Request, response: web.Response) -> None:
    await response.prepare(request)
    await response.write_eof()


def _timings_ms(answer: Answer, total_s: float) -> dict[str, float]:
    seconds = {"queue": answer.queue_s, "features": answer.features_s,
               "score": answer.score_s, "total": total_s}  # fmt: skip
    return {k: v * 1000 for k, v in seconds.items()}


def _reply(
    request_id: str | None, failure: Failure, headers: dict[str, str] | None = None
) -> Reply:
    extra = dict(JSON_HEADERS, **(headers or {}))
    if failure.retry_after_s is not None:
        extra["Retry-After"] = str(failure.retry_after_s)
    return failure.status, render_error(request_id, failure.kind, failure.reason), extra


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
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_serve(config, stop, models, metrics, clock, on_started))
    finally:
        watcher.stop()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed, else asyncio's.

    libuv runs the loop and the transports in C: in one ``bench.http`` run against the asyncio
    build, 1.65x the requests/s and 0.56x the p99, for 7% less CPU per request.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


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
