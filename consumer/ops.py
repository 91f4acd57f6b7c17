"""The side server for SREs: /metrics (Prometheus text), /healthz (alive), /readyz (ready).

Implemented once and used by both entry points: the stream service (alive: the Kafka loop
iterated within `stale_after_s`; ready: partitions assigned, models loaded and the Kafka cluster
reachable) and the standalone ranking API (alive: its batcher runs; ready: models loaded and the
batcher runs). Each passes its own `Probe`s; the routes, status codes and exposition are the same.
A port that cannot be bound is a `StartupError` naming the address.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from consumer.clock import Clock
from consumer.errors import StartupError
from consumer.metrics import exposition
from consumer.stream.loop import LoopState

Probe = Callable[[], tuple[bool, dict[str, object]]]  # (passing, JSON body)


def add_ops_routes(app: web.Application, registry: CollectorRegistry, alive: Probe,
                   ready: Probe) -> None:  # fmt: skip
    """Add /metrics, /healthz and /readyz to `app` (200 while a probe passes, else 503)."""

    async def metrics(_request: web.Request) -> web.Response:
        body = exposition(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def answer(probe: Probe) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_request: web.Request) -> web.Response:
            passing, body = probe()
            return web.json_response(body, status=200 if passing else 503)

        return handler

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", answer(alive))
    app.router.add_get("/readyz", answer(ready))


def loop_probes(
    state: LoopState, clock: Clock, models_loaded: Callable[[], bool], stale_after_s: float = 30.0
) -> tuple[Probe, Probe]:
    """Liveness and readiness of a Kafka loop."""

    def alive() -> tuple[bool, dict[str, object]]:
        age = clock.monotonic() - state.last_beat
        if state.running and age <= stale_after_s:
            return True, {"status": "ok", "last_loop_s": round(age, 3)}
        status = "stalled" if state.running else "stopped"
        return False, {"status": status, "last_loop_s": round(age, 3)}

    def ready() -> tuple[bool, dict[str, object]]:
        loaded = models_loaded()
        passing = bool(state.assigned) and loaded and state.kafka_up
        body: dict[str, object] = {"ready": passing, "assigned_partitions": len(state.assigned),
                "models_loaded": loaded, "kafka_reachable": state.kafka_up}  # fmt: skip
        return passing, body

    return alive, ready


def build_app(
    registry: CollectorRegistry,
    state: LoopState,
    clock: Clock,
    models_loaded: Callable[[], bool],
    stale_after_s: float = 30.0,
) -> web.Application:
    """The stream service's side server."""
    app = web.Application()
    add_ops_routes(app, registry, *loop_probes(state, clock, models_loaded, stale_after_s))
    return app


async def start_server(
    app: web.Application, host: str, port: int, key: str | None = None
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the bound port.

    A port that cannot be bound (in use, not permitted, unknown host) is a `StartupError` naming
    the address and the config `key` that chose it.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        reason = bind_failure_reason(exc)
        raise StartupError(f"cannot listen on {host}:{port}: {reason}", key=key) from exc
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


def bind_failure_reason(exc: OSError) -> str:
    """The short reason of a bind failure ("Address already in use"), without asyncio's framing."""
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)
    return str(exc.strerror or exc)
