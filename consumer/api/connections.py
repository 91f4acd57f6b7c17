"""The ranking API's listener: bounded connections and time limits on every part of a request.

aiohttp alone bounds neither how many connections a server holds nor how long a client may take
to send a request. This module adds both around an `aiohttp.web.AppRunner`:

- ``max_connections``: a connection accepted while that many are open is answered ``503``
  (``Retry-After: 1``, ``Connection: close``) without being read, and counted in
  ``stream_scorer_api_connections_rejected_total``; ``stream_scorer_api_open_connections``
  shows how many are open.
- ``header_timeout_s``: once the first byte of a request arrives, its head (request line and
  headers) must be complete within this long, or the connection is closed and counted in
  ``stream_scorer_api_header_timeouts_total`` (a client trickling its headers).
- ``idle_timeout_s``: a connection that sends nothing this long after opening, or after its
  previous answer, is closed (aiohttp's keep-alive timer).
- the body is read by the handler within the request's own deadline, else ``408``
  (`consumer.api.server`); what a client still sends after an early answer (408, 413) is read
  and discarded for at most `LINGER_S`, then the connection is closed.
- the answer: a client that stops reading is disconnected once an answer stays unsent for
  ``ANSWER_TIMEOUT_S`` (`consumer.api.server`).

A client's fault is not the server's error: aiohttp logs a request its parser refuses
(malformed request line, headers or chunked framing; it answers 400 itself) and a client that
vanishes mid-request as ``ERROR`` with a traceback. `ServerLog` logs those once at debug and
counts them (``stream_scorer_api_malformed_requests_total``,
``stream_scorer_api_client_disconnects_total{stage="request"}``); anything else still reaches
the ``aiohttp.server`` log as an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.http import HttpProcessingError

from consumer.errors import StartupError
from consumer.metrics import Metrics
from consumer.ops import bind_failure_reason

log = logging.getLogger(__name__)

LINGER_S = 2.0  # after answering a request whose body was not read: drain this long, then close
_REFUSAL_BODY = b'{"request_id":null,"error":"overloaded","reason":"too many open connections"}'
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
    + str(len(_REFUSAL_BODY)).encode()
    + b"\r\n\r\n"
    + _REFUSAL_BODY
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 1024
    idle_timeout_s: float = 60.0
    header_timeout_s: float = 10.0


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log, with clients' faults demoted to one debug line and counted."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.getLogger("aiohttp.server"))
        self._metrics = metrics

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            self._metrics.api_malformed_requests.inc()
            level = logging.DEBUG
        elif isinstance(exc, ConnectionError):
            self._metrics.api_client_disconnects.labels("request").inc()
            level = logging.DEBUG
        if level == logging.DEBUG and isinstance(exc, BaseException):
            kwargs.pop("exc_info")  # one line, no traceback
            msg = f"{msg} ({type(exc).__name__}: {exc})"
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs


class _Handler(web.RequestHandler):
    """aiohttp's connection handler, with a deadline on each request head.

    The timer starts at the first byte received while no request is in progress and stops
    when `track_requests` sees the head parsed (the request reached the application).
    """

    def __init__(self, manager: web.Server, metrics: Metrics, head_timeout_s: float,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(manager, **kwargs)
        self._metrics = metrics
        self._head_timeout_s = head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self.in_request = False

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and not self.in_request and data:
            loop = asyncio.get_running_loop()
            self._head_timer = loop.call_later(self._head_timeout_s, self._head_too_slow)
        super().data_received(data)

    def request_started(self) -> None:
        self.in_request = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        self._metrics.api_header_timeouts.inc()
        log.debug("closed a connection whose request head took over %.1f s", self._head_timeout_s)
        self.force_close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell a `_Handler` connection when a request's head is in and when it is answered."""
    protocol = request.protocol
    if not isinstance(protocol, _Handler):  # served by another runner (tests): nothing to track
        return await handler(request)
    protocol.request_started()
    try:
        return await handler(request)
    finally:
        protocol.in_request = False


class _Refusal(asyncio.Protocol):
    """A connection over the limit: one 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        stream.write(REFUSAL)
        stream.close()


class _Gate:
    """Protocol factory: a `_Handler` while under the connection limit, else a `_Refusal`."""

    def __init__(self, server: web.Server, limits: ConnectionLimits, metrics: Metrics,
                 handler_args: dict[str, Any]) -> None:  # fmt: skip
        self._server = server
        self._limits = limits
        self._metrics = metrics
        self._handler_args = handler_args
        self._accepting = 0  # made by this factory, not yet registered by connection_made
        metrics.api_open_connections.set_function(lambda: len(self._server.connections))

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self._server.connections) + self._accepting >= self._limits.max_connections:
            self._metrics.api_connections_rejected.inc()
            return _Refusal()
        # asyncio schedules the new transport's connection_made right after this factory
        # returns; the handler is then in `server.connections`. Until then it counts here.
        self._accepting += 1
        loop = asyncio.get_running_loop()
        loop.call_soon(self._accepted)
        return _Handler(self._server, self._metrics, self._limits.header_timeout_s, loop=loop,
                        **self._handler_args)  # fmt: skip

    def _accepted(self) -> None:
        self._accepting -= 1


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through `_Gate`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: _Gate) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._gate = gate
        self.bound_port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._gate, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        sockets = self._server.sockets
        self.bound_port = int(sockets[0].getsockname()[1]) if sockets else self._port


async def start_guarded(
    app: web.Application, host: str, port: int, limits: ConnectionLimits, metrics: Metrics
) -> tuple[web.AppRunner, int]:
    """Serve `app` (built with `track_requests`) within `limits`: (runner, bound port)."""
    handler_args: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": limits.idle_timeout_s,
        "lingering_time": LINGER_S,
        "logger": ServerLog(metrics),
    }
    runner = web.AppRunner(app, **handler_args)
    await runner.setup()
    assert runner.server is not None
    site = GuardedSite(runner, host, port, _Gate(runner.server, limits, metrics, handler_args))
    try:
        await site.start()
    except BaseException as exc:
        await runner.cleanup()
        if isinstance(exc, OSError):  # in use, not an address of this host, no permission
            reason = f"cannot listen on {host}:{port}: {bind_failure_reason(exc)}"
            raise StartupError(reason, key="api.port") from exc
        raise
    return runner, site.bound_port
