"""The ranking API reads ``traceparent`` and answers with the scorer's own span as the parent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.telemetry.tracecontext import parse_traceparent
from tests.consumer.api.support import as_json, job, make_api

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("api-trace")
    return write_demo_data(root, n_items=300, n_users=30, seed=6, hash_bits=12)


async def post(
    client: TestClient[Any, Any], data: DemoData, headers: dict[str, str]
) -> tuple[int, dict[str, str]]:
    resp = await client.post("/v1/rank", json=as_json(job(data, 1)), headers=headers)
    await resp.read()
    return resp.status, dict(resp.headers)


async def test_the_answer_continues_the_requests_trace(data: DemoData) -> None:
    async with TestClient(TestServer(make_api(data).build_app())) as client:
        status, headers = await post(client, data, {
            "traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "v=1"})  # fmt: skip
    assert status == 200
    ids = parse_traceparent(headers["traceparent"].encode())
    assert ids is not None
    assert (ids[0], ids[2]) == (TRACE.encode(), b"01")
    assert ids[1] != PARENT.encode()
    assert headers["tracestate"] == "v=1"


async def test_errors_continue_the_trace_too_and_no_context_gets_none(data: DemoData) -> None:
    async with TestClient(TestServer(make_api(data).build_app())) as client:
        headers = {"Content-Type": "application/json", "traceparent": f"00-{TRACE}-{PARENT}-00"}
        resp = await client.post("/v1/rank", data=b"{", headers=headers)
        assert resp.status == 400
        assert resp.headers["traceparent"].startswith(f"00-{TRACE}-")
        status, headers = await post(client, data, {})
    assert status == 200
    assert "traceparent" not in headers


async def test_a_malformed_traceparent_is_ignored_and_counted(data: DemoData) -> None:
    api = make_api(data)
    async with TestClient(TestServer(api.build_app())) as client:
        status, headers = await post(client, data, {"traceparent": "00-zzzz"})
    assert status == 200
    assert "traceparent" not in headers
    registry = api._metrics.registry  # the API's injected registry
    value = registry.get_sample_value("stream_scorer_trace_context_dropped_total",
                                      {"source": "http", "header": "traceparent"})  # fmt: skip
    assert value == 1
