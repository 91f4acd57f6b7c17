"""The ranking API's listener on loopback: vanished clients, half-sent and malformed requests,
and the connection limit. Every test is bounded in sockets (<= 90) and time (<= 10 s), and runs
on asyncio's event loop and on uvloop's (conftest.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from consumer.api import server
from consumer.api.server import RankingApi
from consumer.devtools.demo_data import DemoData
from consumer.errors import StartupError
from tests.consumer.api.support import GatedSource, as_json, job, make_api, store

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def serving(data: DemoData, registry: CollectorRegistry, **kwargs: Any) -> AsyncIterator[int]:
    """The API on a free loopback port, as `RankingApi.start` serves it."""
    async with serving_api(data, registry, **kwargs) as (_, port):
        yield port


@asynccontextmanager
async def serving_api(
    data: DemoData, registry: CollectorRegistry, **kwargs: Any
) -> AsyncIterator[tuple[RankingApi, int]]:
    api: RankingApi = make_api(data, registry=registry, **kwargs)
    port = await api.start("127.0.0.1", 0)
    try:
        yield api, port
    finally:
        await api.stop()


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"stream_scorer_{name}", labels) or 0.0


def head(length: int) -> bytes:
    return (b"POST /v1/rank HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % length)  # fmt: skip


async def connect(port: int, payload: bytes = b"") -> Conn:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if payload:
        writer.write(payload)
        await writer.drain()
    return reader, writer


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def rank_once(port: int, data: DemoData) -> int:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/v1/rank"
        async with session.post(url, json=as_json(job(data, 2))) as resp:
            await resp.read()
            return resp.status


async def test_clients_gone_mid_request_are_counted_and_logged_once_at_debug(
    data: DemoData, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="consumer.api.server")
    registry = CollectorRegistry()
    body = json.dumps(as_json(job(data, 1))).encode()
    async with serving(data, registry) as port:
        conns = [await connect(port, head(len(body)) + body[: len(body) // 2]) for _ in range(20)]
        await asyncio.sleep(0.3)  # the handlers are now waiting for the rest of the bodies
        for i, (_, writer) in enumerate(conns):
            if i % 2:  # half of them reset rather than close
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        await until(lambda: sample(registry, "api_client_disconnects_total", stage="request") >= 20)
        assert await rank_once(port, data) == 200
    assert sample(registry, "api_client_disconnects_total", stage="request") == 20.0
    assert errors(caplog) == []
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 20
    assert {r.levelno for r in gone} == {logging.DEBUG}
    assert all(r.exc_info is None for r in gone)


async def test_a_client_gone_while_its_request_is_ranked_is_counted(
    data: DemoData, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    slow = job(data, 5)
    source = GatedSource(store(data), blocked=slow.user_id)
    body = json.dumps(as_json(slow)).encode()
    async with serving(data, registry, source=source) as port:
        _, writer = await connect(port, head(len(body)) + body)
        await asyncio.wait_for(source.entered.wait(), 5)
        writer.close()
        await asyncio.sleep(0.2)  # the server sees the connection closed
        source.gate.set()
        await until(lambda: sample(registry, "api_client_disconnects_total", stage="answer") == 1)
    assert sample(registry, "api_requests_total", path="/v1/rank", status="200") == 1.0
    assert errors(caplog) == []


async def test_half_sent_requests_are_closed_within_the_timeouts(data: DemoData) -> None:
    registry = CollectorRegistry()
    async with serving(
        data, registry, timeout_ms=300, idle_timeout_s=60, header_timeout_s=1
    ) as port:
        started = time.monotonic()
        half_bodies = [await connect(port, head(5_000) + b'{"user_id": 1') for _ in range(30)]
        half_heads = [
            await connect(port, b"POST /v1/rank HTTP/1.1\r\nHost: t\r\n") for _ in range(30)
        ]
        trickling = [await connect(port, b"P") for _ in range(30)]
        everything = half_bodies + half_heads + trickling
        for _, writer in trickling:  # one more byte after 0.5 s: data keeps coming, too slowly
            await asyncio.sleep(0.5 / 30)
            writer.write(b"O")
        answers = await asyncio.wait_for(
            asyncio.gather(*(reader.read() for reader, _ in everything)), 10
        )
        elapsed = time.monotonic() - started
        for _, writer in everything:
            writer.close()
        assert await rank_once(port, data) == 200
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers[:30])
    assert all(b'"error":"timeout"' in a for a in answers[:30])
    assert all(b"\r\nConnection: close\r\n" in a for a in answers[:30])
    assert answers[30:] == [b""] * 60  # closed without an answer: no request ever arrived
    assert elapsed < 6  # 0.3 s deadline + 2 s linger; 1 s head timeout
    assert sample(registry, "api_requests_total", path="/v1/rank", status="408") == 30.0
    assert sample(registry, "api_header_timeouts_total") == 60.0


async def test_silent_connections_close_after_the_idle_timeout(data: DemoData) -> None:
    registry = CollectorRegistry()
    async with serving(data, registry, idle_timeout_s=1, header_timeout_s=30) as port:
        started = time.monotonic()
        silent = [await connect(port) for _ in range(20)]
        answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in silent)), 10)
        elapsed = time.monotonic() - started
        for _, writer in silent:
            writer.close()
        kept = await connect(port)  # a connection that keeps talking is served past it
        for _ in range(3):
            await asyncio.sleep(0.5)
            body = json.dumps(as_json(job(data, 2))).encode()
            kept[1].write(head(len(body)) + body)
            status = await asyncio.wait_for(kept[0].readline(), 5)
            assert status.startswith(b"HTTP/1.1 200 ")
            await kept[0].readuntil(b"}}")  # the rest of the answer: its timings close it
        kept[1].close()
    assert answers == [b""] * 20
    assert 0.9 < elapsed < 5


async def test_connections_over_the_limit_are_refused_with_503(data: DemoData) -> None:
    registry = CollectorRegistry()
    async with serving(data, registry, max_connections=4) as port:
        held = [await connect(port) for _ in range(4)]
        await until(lambda: sample(registry, "api_open_connections") == 4)
        reader, over = await connect(port)
        refused = await asyncio.wait_for(reader.read(), 5)
        over.close()
        for _, writer in held:
            writer.close()
        await until(lambda: sample(registry, "api_open_connections") == 0)
        assert await rank_once(port, data) == 200
    assert refused.startswith(b"HTTP/1.1 503 ")
    assert b"Retry-After: 1" in refused
    assert refused.endswith(b'"reason":"too many open connections"}')
    assert sample(registry, "api_connections_rejected_total") == 1.0


MALFORMED = [
    b"POST /v1/rank HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\nzz\r\n',
    b"POST /v1/rank HTTP/1.1\r\nHost: t\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n",
    b"POST /v1/rank HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
]


async def test_requests_the_http_parser_refuses_are_400_and_counted_not_errors(
    data: DemoData, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    async with serving(data, registry) as port:
        for raw in MALFORMED:
            reader, writer = await connect(port, raw)
            status = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            assert status.split()[1] == b"400"
        assert await rank_once(port, data) == 200
    assert sample(registry, "api_malformed_requests_total") == len(MALFORMED)
    assert errors(caplog) == []


async def test_a_port_in_use_is_one_clear_error_naming_the_key(data: DemoData) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        api = make_api(data)
        with pytest.raises(
            StartupError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"
        ) as info:
            await api.start("127.0.0.1", port)
    assert info.value.key == "api.port"


async def test_a_client_that_never_reads_its_answers_is_disconnected(
    data: DemoData, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(server, "ANSWER_TIMEOUT_S", 0.5)
    registry = CollectorRegistry()
    requests = b"".join(
        head(len(body)) + body
        for body in (json.dumps(as_json(job(data, i, n=100, top_k=20))).encode() for i in range(60))
    )  # ~60 KB of answers
    async with serving_api(data, registry) as (api, port):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        _, writer = await asyncio.open_connection(sock=sock)
        cast(asyncio.Transport, writer.transport).pause_reading()  # take no answer at all
        await until(lambda: len(connections(api)) == 1)
        for handler in connections(api):  # small buffers: the stall shows after a few answers
            handler.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # fmt: skip
            handler.transport.set_write_buffer_limits(high=2048)
        writer.write(requests)
        await until(lambda: not connections(api), timeout_s=8)
        writer.close()
    assert sample(registry, "api_client_disconnects_total", stage="answer") == 1.0
    assert 0 < sample(registry, "api_requests_total", path="/v1/rank", status="200") < 60
    assert errors(caplog) == []


def connections(api: RankingApi) -> list[Any]:
    """The server side of the API's open connections (aiohttp request handlers)."""
    runner = api._runner
    assert runner is not None
    assert runner.server is not None
    return [h for h in runner.server.connections if h.transport is not None]
