"""Helpers of the ranking API's tests: demo data, an API over it, jobs and the stream oracle."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry

from consumer.api.batcher import SerializedScorer
from consumer.api.server import RankingApi
from consumer.clock import ManualClock
from consumer.config import ApiConfig, Config, FeatureConfig, LimitsConfig, ModelConfig
from consumer.devtools.demo_data import DemoData
from consumer.errors import FeaturesUnavailableError
from consumer.features.fetcher import FeatureFetcher
from consumer.features.files import FileFeatureStore
from consumer.features.source import BatchFeatures, FeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.stream.processor import BatchProcessor
from schemas.records import ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobDecoder, JobEncoder, RankedListDecoder, RankedListEncoder
from scoring.batch import RankedBatch, ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.model import LRModel
from tests.consumer.reference_support import demo_model, reference_probs

NOW_MS = 1_800_000_000_000
AVRO = "application/vnd.kafka.avro.v2+binary"


def config_for(
    data: DemoData, max_wait_ms: int = 5, max_batch_jobs: int = 64, **api: Any
) -> Config:
    return Config(
        models=ModelConfig(directory=str(data.models_dir)),
        features=FeatureConfig(users_file=str(data.users_file), items_file=str(data.items_file)),
        limits=LimitsConfig(max_candidates=100, max_top_k=20),
        api=ApiConfig(max_wait_ms=max_wait_ms, max_batch_jobs=max_batch_jobs, **api),
    )


def store(data: DemoData) -> FileFeatureStore:
    return FileFeatureStore.from_files(data.users_file, data.items_file)


class CountingScorer(SerializedScorer):
    """Counts kernel calls: one per model per micro-batch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []  # jobs per call

    def rank(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> RankedBatch:
        self.calls.append(batch.user_ids.size)
        return super().rank(model, batch, users, items)


def make_api(
    data: DemoData,
    source: FeatureSource | None = None,
    scorer: SerializedScorer | None = None,
    max_wait_ms: int = 5,
    timeout_ms: int = 2_000,
    max_batch_jobs: int = 64,
    registry: CollectorRegistry | None = None,
    **api: Any,
) -> RankingApi:
    config = config_for(data, max_wait_ms, max_batch_jobs, **api)
    models = ModelRegistry.from_directory(data.models_dir)
    metrics = Metrics(registry or CollectorRegistry())
    clock = ManualClock(now_ms=NOW_MS)
    fetcher = FeatureFetcher(source or store(data))
    return RankingApi.create(config, models, fetcher, metrics, clock, scorer, timeout_ms)


def job(data: DemoData, i: int, n: int = 30, top_k: int = 5, model: str = "demo-lr") -> ScoringJob:
    return ScoringJob(
        request_id=f"req-{i}", user_id=int(data.user_ids[i % data.user_ids.size]), model=model,
        created_at_ms=NOW_MS, context={"device": "ios", "hour": str(i % 24)},
        candidates=data.item_ids[i * 7 : i * 7 + n], top_k=top_k,
    )  # fmt: skip


def as_json(j: ScoringJob) -> dict[str, Any]:
    return {"request_id": j.request_id, "user_id": j.user_id, "model": j.model,
            "context": j.context, "candidates": np.asarray(j.candidates).tolist(),
            "top_k": j.top_k}  # fmt: skip


def stream_rankings(data: DemoData, jobs: Sequence[ScoringJob]) -> dict[str, tuple[list[int], Any]]:
    """What the Kafka path publishes for `jobs`: request id -> (item ids, scores)."""
    s = store(data)

    processor = BatchProcessor(
        JobDecoder(StaticRegistry()), RankedListEncoder(StaticRegistry()),
        ModelRegistry.from_directory(data.models_dir), SerializedScorer(), FeatureFetcher(s),
        ManualClock(now_ms=NOW_MS), LimitsConfig(max_candidates=100, max_top_k=20),
    )  # fmt: skip
    encoder, decoder = JobEncoder(StaticRegistry()), RankedListDecoder(StaticRegistry())
    outcome = processor.process([encoder.encode(j) for j in jobs])
    assert outcome.rejected == []
    ranked = [decoder.decode(o.value) for o in outcome.outputs]
    return {r.request_id: (r.item_ids.tolist(), r.scores) for r in ranked}


def reference_top(data: DemoData, j: ScoringJob) -> tuple[list[int], list[float]]:
    """The per-candidate reference implementation's top-k for `j`."""
    probs = reference_probs(data, demo_model(data), j)
    order = np.argsort(-probs, kind="stable")[: j.top_k]
    return np.asarray(j.candidates)[order].tolist(), probs[order].tolist()


def check_same(body: dict[str, Any], expected: tuple[list[int], Any]) -> None:
    assert [it["item_id"] for it in body["items"]] == expected[0]
    np.testing.assert_allclose([it["score"] for it in body["items"]], expected[1], atol=1e-6)


class DownSource:
    """A feature store that is down, under the `pause` policy."""

    async def fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> BatchFeatures:
        raise FeaturesUnavailableError("circuit breaker open")

    async def close(self) -> None:
        return None


class GatedSource:
    """Fetches for `blocked` users wait until the test opens the gate."""

    def __init__(self, inner: FileFeatureStore, blocked: int) -> None:
        self.inner = inner
        self.blocked = blocked
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> BatchFeatures:
        if np.any(user_ids == self.blocked):
            self.entered.set()
            await self.gate.wait()
        return await self.inner.fetch(user_ids, item_ids)

    async def close(self) -> None:
        return None
