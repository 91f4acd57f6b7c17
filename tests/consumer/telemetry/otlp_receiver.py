"""A local OTLP/HTTP trace receiver for tests: aiohttp on 127.0.0.1, protobuf decoded.

`OtlpReceiver` serves ``POST /v1/traces`` on its own event-loop thread, decodes each body as an
``ExportTraceServiceRequest`` with opentelemetry-proto, and keeps the spans (with their resource
attributes) for assertions. Bounded: it keeps at most `max_requests` requests and stops with the
context manager.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def value_of(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


@dataclass(frozen=True, slots=True)
class Received:
    span: Span
    resource: dict[str, object]

    @property
    def attributes(self) -> dict[str, object]:
        return {a.key: value_of(a.value) for a in self.span.attributes}


class OtlpReceiver:
    def __init__(self, max_requests: int = 1_000) -> None:
        self.spans: list[Received] = []
        self.requests = 0
        self.content_types: set[str] = set()
        self._max = max_requests
        self._lock = threading.Lock()
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        with self._lock:
            self.requests += 1
            self.content_types.add(request.content_type)
            if self.requests <= self._max:
                for rs in export.resource_spans:
                    resource = {a.key: value_of(a.value) for a in rs.resource.attributes}
                    for scope in rs.scope_spans:
                        self.spans.extend(Received(s, resource) for s in scope.spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    def named(self, name: str) -> list[Received]:
        with self._lock:
            return [r for r in self.spans if r.span.name == name]

    def wait_for(self, name: str, count: int, timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.named(name)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.named(name))} of {count} {name!r} spans")
            time.sleep(0.05)
        return self.named(name)


@contextmanager
def otlp_receiver(max_requests: int = 1_000) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(max_requests)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/traces", receiver._traces)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        receiver.port = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True, name="otlp-receiver")
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
