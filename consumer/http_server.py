"""The side server for SREs: /metrics (Prometheus text), /healthz (alive), /readyz (ready).

Alive: the loop iterated within `stale_after_s`. Ready: partitions assigned and models loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumer.clock import Clock
from consumer.runner import LoopState


def build_app(
    registry: CollectorRegistry,
    state: LoopState,
    clock: Clock,
    models_loaded: Callable[[], bool],
    stale_after_s: float = 30.0,
) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        age = clock.monotonic() - state.last_beat
        if state.running and age <= stale_after_s:
            return web.json_response({"status": "ok", "last_loop_s": round(age, 3)})
        return web.json_response(
            {"status": "stalled" if state.running else "stopped", "last_loop_s": round(age, 3)},
            status=503,
        )

    async def readyz(_request: web.Request) -> web.Response:
        ready = bool(state.assigned) and models_loaded()
        body = {
            "ready": ready,
            "assigned_partitions": len(state.assigned),
            "models_loaded": models_loaded(),
        }
        return web.json_response(body, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
