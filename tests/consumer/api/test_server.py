"""The ranking API: same rankings as the stream path, coalescing, and every error's status."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumer.api.batcher import SerializedScorer
from consumer.api.intake import TIMEOUT_HEADER
from consumer.devtools.demo_data import DemoData
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder
from scoring.batch import RankedBatch, ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.model import LRModel
from tests.consumer.api.support import (
    AVRO,
    CountingScorer,
    DownSource,
    GatedSource,
    as_json,
    check_same,
    job,
    make_api,
    reference_top,
    store,
    stream_rankings,
)


async def test_json_and_avro_rank_like_the_stream_path(
    client: TestClient[Any, Any], data: DemoData
) -> None:
    j = job(data, 3, n=40, top_k=7)
    expected = stream_rankings(data, [j])["req-3"]
    ref_ids, ref_scores = reference_top(data, j)
    assert expected[0] == ref_ids
    np.testing.assert_allclose(expected[1], ref_scores, atol=1e-5)

    resp = await client.post("/v1/rank", json=as_json(j))
    assert resp.status == 200
    body = await resp.json()
    assert (body["request_id"], body["user_id"], body["model"]) == ("req-3", j.user_id, "demo-lr")
    assert (body["model_version"], body["degraded"]) == ("v1", False)
    assert set(body["timings_ms"]) == {"queue", "features", "score", "total"}
    assert body["timings_ms"]["total"] >= body["timings_ms"]["score"] > 0
    check_same(body, expected)

    framed = JobEncoder(StaticRegistry()).encode(j)
    for content_type in (AVRO, "application/octet-stream"):
        avro = await client.post("/v1/rank", data=framed, headers={"Content-Type": content_type})
        assert avro.status == 200
        avro_body = await avro.json()
        assert avro_body["request_id"] == "req-3"
        check_same(avro_body, expected)


async def test_json_defaults_top_k_to_the_schema_default(
    client: TestClient[Any, Any], data: DemoData
) -> None:
    request = {"user_id": int(data.user_ids[0]), "model": "demo-lr",
               "candidates": data.item_ids[:80].tolist()}  # fmt: skip
    api_config_limit = 20  # max_top_k in config_for; the default 50 is above it
    resp = await client.post("/v1/rank", json=request)
    assert resp.status == 400
    assert (await resp.json())["reason"] == f"top_k above {api_config_limit}"
    request["top_k"] = 20
    ok = await (await client.post("/v1/rank", json=request)).json()
    assert len(ok["items"]) == 20
    assert len(ok["request_id"]) == 32  # generated when the caller sends none


async def test_concurrent_requests_are_coalesced_into_few_batches(data: DemoData) -> None:
    scorer = CountingScorer()
    api = make_api(data, scorer=scorer, max_wait_ms=50)
    jobs = [job(data, i, n=25 + i, top_k=4) for i in range(20)]
    expected = stream_rankings(data, jobs)
    async with TestClient(TestServer(api.build_app())) as client:
        responses = await asyncio.gather(*(client.post("/v1/rank", json=as_json(j)) for j in jobs))
        bodies = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 20
    for j, body in zip(jobs, bodies, strict=True):
        assert body["request_id"] == j.request_id
        check_same(body, expected[j.request_id])
    assert api.batcher.batches < 20
    assert len(scorer.calls) == api.batcher.batches
    assert sum(scorer.calls) == 20
    assert max(scorer.calls) > 1


async def test_requests_arriving_within_max_wait_share_one_batch(data: DemoData) -> None:
    scorer = CountingScorer()
    api = make_api(data, scorer=scorer, max_wait_ms=400)
    async with TestClient(TestServer(api.build_app())) as client:
        tasks = []
        for i in range(4):  # spread over ~60 ms: only the time window can gather them
            tasks.append(asyncio.create_task(client.post("/v1/rank", json=as_json(job(data, i)))))
            await asyncio.sleep(0.02)
        statuses = [(await t).status for t in tasks]
    assert statuses == [200] * 4
    assert scorer.calls == [4]


async def test_a_batch_closes_at_max_batch_jobs(data: DemoData) -> None:
    scorer = CountingScorer()
    api = make_api(data, scorer=scorer, max_wait_ms=50, max_batch_jobs=3)
    jobs = [job(data, i) for i in range(7)]
    async with TestClient(TestServer(api.build_app())) as client:
        responses = await asyncio.gather(*(client.post("/v1/rank", json=as_json(j)) for j in jobs))
    assert [r.status for r in responses] == [200] * 7
    assert max(scorer.calls) == 3
    assert sum(scorer.calls) == 7
    assert api.batcher.batches == len(scorer.calls) >= 3


BAD_REQUESTS: list[tuple[dict[str, Any] | bytes, str]] = [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "the body must be a JSON object"),
    ({"user_id": "7", "model": "demo-lr", "candidates": [1]}, "user_id must be an integer"),
    ({"user_id": True, "model": "demo-lr", "candidates": [1]}, "user_id must be an integer"),
    ({"model": "demo-lr", "candidates": [1]}, "user_id is required"),
    ({"user_id": 2**64, "model": "demo-lr", "candidates": [1]}, "user_id is out of range"),
    ({"user_id": 1, "model": 5, "candidates": [1]}, "model must be a non-empty string"),
    ({"user_id": 1, "model": "demo-lr"}, "candidates is required"),
    ({"user_id": 1, "model": "demo-lr", "candidates": "1,2"}, "array of integers"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [1, 2.5]}, "array of integers"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [1, True]}, "array of integers"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [1, None]}, "array of integers"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [2**63]}, "candidate id is out of range"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [1], "context": {"a": 1}}, "context must"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [1], "top_k": "5"}, "top_k must be"),
    (
        {"user_id": 1, "model": "demo-lr", "candidates": [1], "top_k": None},
        "top_k must be an integer, not null (leave it out for the default)",
    ),
    (
        {"user_id": None, "model": "demo-lr", "candidates": [1]},
        "user_id must be an integer, not null",
    ),
    ({"user_id": 1, "model": "demo-lr", "candidates": []}, "empty candidate list"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [4, -3]}, "negative candidate id"),
    ({"user_id": -1, "model": "demo-lr", "candidates": [4]}, "negative user_id"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [4], "top_k": 0}, "top_k below 1"),
    ({"user_id": 1, "model": "demo-lr", "candidates": [4], "top_k": 21}, "top_k above 20"),
    ({"user_id": 1, "model": "demo-lr", "candidates": list(range(101))}, "more than 100"),
]


@pytest.mark.parametrize(("body", "reason"), BAD_REQUESTS)
async def test_bad_input_is_400_with_its_reason(
    client: TestClient[Any, Any], body: dict[str, Any] | bytes, reason: str
) -> None:
    if isinstance(body, bytes):
        resp = await client.post(
            "/v1/rank", data=body, headers={"Content-Type": "application/json"}
        )
    else:
        resp = await client.post("/v1/rank", json=body)
    assert resp.status == 400
    answer = await resp.json()
    assert reason in answer["reason"]
    assert answer["error"] in ("decode", "invalid")


async def test_undecodable_avro_is_400(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v1/rank", data=b"\x00\x00\x00\x00\x01\xff", headers={
        "Content-Type": AVRO})  # fmt: skip
    assert resp.status == 400
    assert (await resp.json())["error"] == "decode"
    unknown = await client.post("/v1/rank", data=b"\x00\x00\x00\x00\x63\x00", headers={
        "Content-Type": AVRO})  # fmt: skip
    assert unknown.status == 400
    assert (await unknown.json())["error"] == "unknown_schema"


async def test_unknown_model_is_404_and_wrong_media_type_415(
    client: TestClient[Any, Any], data: DemoData
) -> None:
    resp = await client.post("/v1/rank", json=as_json(job(data, 1, model="nobody")))
    assert resp.status == 404
    body = await resp.json()
    assert (body["error"], body["request_id"]) == ("unknown_model", "req-1")
    assert "'nobody' is not served" in body["reason"]
    text = await client.post("/v1/rank", data="user=1", headers={"Content-Type": "text/plain"})
    assert text.status == 415
    assert (await text.json())["error"] == "unsupported_media_type"


async def test_features_unavailable_is_503_with_retry_after(data: DemoData) -> None:
    api = make_api(data, source=DownSource())
    async with TestClient(TestServer(api.build_app())) as client:
        resp = await client.post("/v1/rank", json=as_json(job(data, 2)))
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "10"  # features.breaker_reset_s
        body = await resp.json()
        assert body == {
            "request_id": "req-2",
            "error": "features_unavailable",
            "reason": "the feature store is unavailable",
        }  # the detail stays in the log


async def test_deadline_answers_504_without_waiting_for_the_batch(data: DemoData) -> None:
    slow, patient = job(data, 4), job(data, 4)
    source = GatedSource(store(data), blocked=slow.user_id)
    api = make_api(data, source=source, max_wait_ms=30)
    async with TestClient(TestServer(api.build_app())) as client:
        first = asyncio.create_task(
            client.post("/v1/rank", json=as_json(slow), headers={TIMEOUT_HEADER: "100"})
        )
        second = asyncio.create_task(client.post("/v1/rank", json=as_json(patient)))
        resp = await asyncio.wait_for(first, 5)
        assert not source.gate.is_set()  # answered while its batch's fetch is still blocked
        assert resp.status == 504
        assert (await resp.json())["error"] == "deadline"
        assert not second.done()
        source.gate.set()
        ok = await second
        assert ok.status == 200
        check_same(await ok.json(), stream_rankings(data, [patient])["req-4"])
    assert api.batcher.batches == 1  # both requests were in the blocked batch


async def test_a_blocked_fetch_does_not_hold_other_batches(data: DemoData) -> None:
    blocked, free = job(data, 5), job(data, 6)
    source = GatedSource(store(data), blocked=blocked.user_id)
    api = make_api(data, source=source, max_wait_ms=1)
    async with TestClient(TestServer(api.build_app())) as client:
        stuck = asyncio.create_task(client.post("/v1/rank", json=as_json(blocked)))
        await asyncio.wait_for(source.entered.wait(), 5)
        resp = await client.post("/v1/rank", json=as_json(free))
        assert resp.status == 200
        assert not stuck.done()
        source.gate.set()
        assert (await stuck).status == 200


async def test_metrics_health_and_readiness_on_the_api_port(
    client: TestClient[Any, Any], data: DemoData
) -> None:
    await client.post("/v1/rank", json=as_json(job(data, 7)))
    await client.post("/v1/rank", json={"user_id": 1})
    text = await (await client.get("/metrics")).text()
    assert 'stream_scorer_api_requests_total{path="/v1/rank",status="200"} 1.0' in text
    assert 'stream_scorer_api_requests_total{path="/v1/rank",status="400"} 1.0' in text
    assert 'stream_scorer_api_request_seconds_count{path="/v1/rank"} 2.0' in text
    assert 'stream_scorer_api_predictions_total{model="demo-lr"} 30.0' in text
    assert "stream_scorer_api_batch_size_jobs_count 1.0" in text
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["models_loaded"] is True


class SlowScorer(SerializedScorer):
    """A kernel call that takes `seconds` (on whichever thread makes it)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.threads: set[str] = set()

    def rank(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> RankedBatch:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        return super().rank(model, batch, users, items)


async def test_with_in_memory_features_a_late_ranking_is_still_a_504(data: DemoData) -> None:
    scorer = SlowScorer(0.3)
    api = make_api(data, scorer=scorer)
    async with TestClient(TestServer(api.build_app())) as client:
        late = await client.post("/v1/rank", json=as_json(job(data, 1)),
                                 headers={TIMEOUT_HEADER: "100"})  # fmt: skip
        late_body = await late.json()
        scorer.seconds = 0.0
        on_time = await client.post("/v1/rank", json=as_json(job(data, 2)))
    assert late.status == 504
    assert late_body["error"] == "deadline"
    assert on_time.status == 200
    assert scorer.threads == {threading.current_thread().name}  # scored on the event loop
