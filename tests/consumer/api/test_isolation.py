"""One bad request never fails another: per-request checks, bounds, retries apart, clean 500s."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from consumer.api.batcher import SerializedScorer
from consumer.api.codec import BOUNDS, MAX_BODY_BYTES
from consumer.api.intake import TIMEOUT_HEADER
from consumer.devtools.demo_data import DemoData
from schemas.records import ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder
from scoring.batch import RankedBatch, ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.model import LRModel
from tests.consumer.api.support import AVRO, as_json, check_same, job, make_api, stream_rankings

RANKED = "stream_scorer_api_requests_total"


def answered(registry: CollectorRegistry, status: int) -> float:
    return registry.get_sample_value(RANKED, {"path": "/v1/rank", "status": str(status)}) or 0.0


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_bad_requests_coalesced_with_good_ones_fail_alone(
    data: DemoData, caplog: pytest.LogCaptureFixture
) -> None:
    """60 concurrent requests, 6 with a lone surrogate in a context value: 54 x 200, 6 x 400."""
    registry = CollectorRegistry()
    api = make_api(data, max_wait_ms=50, registry=registry)
    good = [job(data, i, n=20 + i % 9) for i in range(60) if i % 10 != 3]
    bad = [as_json(job(data, i)) | {"context": {"device": "\ud800"}} for i in range(3, 60, 10)]
    expected = stream_rankings(data, good)
    async with TestClient(TestServer(api.build_app())) as client:
        bodies: list[dict[str, Any]] = [as_json(j) for j in good] + bad
        responses = await asyncio.gather(*(client.post("/v1/rank", json=b) for b in bodies))
        answers = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 54 + [400] * 6
    for j, answer in zip(good, answers, strict=False):
        check_same(answer, expected[j.request_id])
    for answer in answers[54:]:
        assert answer["error"] == "decode"
        assert "surrogate" in answer["reason"]
    assert api.batcher.batches < 54  # they were coalesced
    assert (answered(registry, 200), answered(registry, 400)) == (54.0, 6.0)
    assert errors_logged(caplog) == []


class FailingScorer(SerializedScorer):
    """A kernel with a bug that only one user's jobs hit."""

    def __init__(self, poison_user: int) -> None:
        super().__init__()
        self.poison_user = poison_user
        self.calls = 0

    def rank(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> RankedBatch:
        self.calls += 1
        if np.any(batch.user_ids == self.poison_user):
            raise ValueError("secret internal detail")
        return super().rank(model, batch, users, items)


async def test_a_failing_batch_is_retried_apart_and_only_the_culprit_gets_500(
    data: DemoData, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = [job(data, i) for i in range(10)]
    poison = jobs[4]
    registry = CollectorRegistry()
    scorer = FailingScorer(poison.user_id)
    api = make_api(data, scorer=scorer, max_wait_ms=50, registry=registry)
    expected = stream_rankings(data, [j for j in jobs if j.user_id != poison.user_id])
    async with TestClient(TestServer(api.build_app())) as client:
        responses = await asyncio.gather(*(client.post("/v1/rank", json=as_json(j)) for j in jobs))
        answers = [await r.json() for r in responses]
    for j, resp, answer in zip(jobs, responses, answers, strict=True):
        if j.user_id == poison.user_id:
            assert resp.status == 500
            assert answer == {"request_id": j.request_id, "error": "internal",
                              "reason": "internal error"}  # fmt: skip
        else:
            assert resp.status == 200
            check_same(answer, expected[j.request_id])
    assert api.batcher.retried >= 1
    assert answered(registry, 500) == 1.0
    failures = errors_logged(caplog)
    assert len(failures) == 1
    assert repr(poison.request_id) in failures[0].getMessage()  # the id the caller got
    assert failures[0].exc_info is not None  # the details are in the log, not in the answer
    assert "secret internal detail" not in json.dumps(answers)


NESTED = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"user_id": 1, "model": "demo-lr", "candidates": [1], "context": '
    + b'{"a": ' * 50_000
    + b"1"
    + b"}" * 50_001,
]


@pytest.mark.parametrize("body", NESTED, ids=["array", "context"])
async def test_deeply_nested_json_is_400_without_a_traceback(
    client: TestClient[Any, Any], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    resp = await client.post("/v1/rank", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "malformed JSON" in (await resp.json())["reason"]
    assert errors_logged(caplog) == []


LONG = "x" * 500_000


def long_avro_request_id(data: DemoData) -> bytes:
    j = job(data, 1)
    long_id = ScoringJob(LONG, j.user_id, j.model, j.created_at_ms, j.context, j.candidates, 5)
    return JobEncoder(StaticRegistry()).encode(long_id)


def with_fields(data: DemoData, **fields: Any) -> dict[str, Any]:
    return as_json(job(data, 1)) | fields


OUT_OF_BOUNDS: list[tuple[str, dict[str, Any], str]] = [
    ("request_id", {"request_id": LONG}, "request_id is longer than 128 characters"),
    ("model", {"model": LONG}, "model is longer than 128 characters"),
    ("keys", {"context": {f"k{i}": "v" for i in range(30_000)}}, "context has more than 64 keys"),
    ("key", {"context": {"k" * 129: "v"}}, "a context key is longer than 128 characters"),
    ("value", {"context": {"device": "v" * 513}}, "a context value is longer than 512 characters"),
    ("empty_id", {"request_id": ""}, "request_id must be a non-empty string"),
]


@pytest.mark.parametrize(("fields", "reason"), [c[1:] for c in OUT_OF_BOUNDS],
                         ids=[c[0] for c in OUT_OF_BOUNDS])  # fmt: skip
async def test_strings_and_maps_out_of_bounds_are_400_and_not_echoed(
    client: TestClient[Any, Any], data: DemoData, fields: dict[str, Any], reason: str
) -> None:
    resp = await client.post("/v1/rank", json=with_fields(data, **fields))
    assert resp.status == 400
    answer = await resp.json()
    assert (answer["request_id"], answer["error"], answer["reason"]) == (None, "decode", reason)
    assert len(await resp.read()) < 200


async def test_the_avro_form_is_bounded_too(client: TestClient[Any, Any], data: DemoData) -> None:
    resp = await client.post("/v1/rank", data=long_avro_request_id(data),
                             headers={"Content-Type": AVRO})  # fmt: skip
    assert resp.status == 400
    assert (await resp.json())["reason"] == "request_id is longer than 128 characters"
    assert BOUNDS.request_id_chars == 128


async def test_every_status_on_the_rank_path_is_counted(
    data: DemoData, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    api = make_api(data, registry=registry)
    huge = b"[" + b"1," * (MAX_BODY_BYTES // 2) + b"1]"
    bomb = gzip.compress(b" " * (8 * MAX_BODY_BYTES))  # ~8 KB on the wire, 8 MiB inflated
    json_type = {"Content-Type": "application/json"}
    gzipped = json_type | {"Content-Encoding": "gzip"}
    async with TestClient(TestServer(api.build_app())) as client:
        for body, headers in ((io.BytesIO(huge), json_type), (_chunks(huge), json_type),
                              (bomb, gzipped)):  # fmt: skip
            resp = await client.post("/v1/rank", data=body, headers=headers)
            assert resp.status == 413
            assert (await resp.json())["error"] == "too_large"  # read before the server closes
        wrong_method = await client.get("/v1/rank")
        ok = await client.post("/v1/rank", json=as_json(job(data, 2)))
    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert ok.status == 200
    assert (answered(registry, 413), answered(registry, 405), answered(registry, 200)) == (
        3.0, 1.0, 1.0)  # fmt: skip
    assert errors_logged(caplog) == []


async def _chunks(body: bytes) -> Any:
    for start in range(0, len(body), 65_536):
        yield body[start : start + 65_536]


async def test_a_timeout_header_of_thousands_of_digits_is_capped_not_500(
    client: TestClient[Any, Any], data: DemoData
) -> None:
    j = job(data, 3)
    resp = await client.post("/v1/rank", json=as_json(j), headers={TIMEOUT_HEADER: "9" * 5_000})
    assert resp.status == 200
    check_same(await resp.json(), stream_rankings(data, [j])["req-3"])
