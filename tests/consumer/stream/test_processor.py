"""BatchProcessor: every payload ends in exactly one output or one rejection, scored exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consumer.clock import ManualClock
from consumer.config import LimitsConfig
from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.features.fetcher import FeatureFetcher
from consumer.features.files import FileFeatureStore
from consumer.models.registry import ModelRegistry
from consumer.stream.processor import BatchProcessor
from schemas.records import ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobDecoder, JobEncoder, RankedListDecoder, RankedListEncoder
from scoring.kernel import Scorer
from tests.consumer.reference_support import demo_model, reference_scores

NOW_MS = 1_800_000_000_000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("pipeline")
    return write_demo_data(root, n_items=500, n_users=50, seed=5, hash_bits=14)


def make_processor(data: DemoData, default_model: str = "") -> BatchProcessor:
    store = FileFeatureStore.from_files(data.users_file, data.items_file)

    return BatchProcessor(
        decoder=JobDecoder(StaticRegistry()),
        encoder=RankedListEncoder(StaticRegistry()),
        models=ModelRegistry.from_directory(data.models_dir, default_model),
        scorer=Scorer(),
        fetcher=FeatureFetcher(store),
        clock=ManualClock(now_ms=NOW_MS),
        limits=LimitsConfig(max_candidates=100, max_top_k=20),
    )


def job(data: DemoData, i: int, model: str = "demo-lr", n: int = 30, top_k: int = 5) -> ScoringJob:
    return ScoringJob(
        request_id=f"req-{i}", user_id=int(data.user_ids[i % data.user_ids.size]), model=model,
        created_at_ms=NOW_MS - 100 - i, context={"device": "ios", "hour": str(i % 24)},
        candidates=data.item_ids[i : i + n], top_k=top_k,
    )  # fmt: skip


def test_mixed_batch_every_position_accounted_for(data: DemoData) -> None:
    encoder = JobEncoder(StaticRegistry())
    good = [job(data, i) for i in range(4)]
    payloads: list[bytes | None] = [
        encoder.encode(good[0]),
        b"\x00\x00\x00\x00\x01\xff",  # truncated body
        encoder.encode(good[1]),
        encoder.encode(job(data, 9, model="nobody")),
        None,
        encoder.encode(job(data, 10, n=0)),
        encoder.encode(job(data, 11, top_k=50)),
        encoder.encode(good[2]),
        encoder.encode(good[3]),
    ]
    outcome = make_processor(data).process(payloads)
    assert [o.position for o in outcome.outputs] == [0, 2, 7, 8]
    assert [(r.position, r.kind) for r in outcome.rejected] == [
        (1, "decode"), (3, "unknown_model"), (4, "decode"), (5, "invalid"), (6, "invalid"),
    ]  # fmt: skip
    assert "nobody" in outcome.rejected[1].reason
    assert outcome.rejected[3].reason == "empty candidate list"
    assert outcome.rejected[4].reason == "top_k above 20"
    assert outcome.predictions == {"demo-lr": 120}
    assert outcome.jobs == {"demo-lr": 4}
    assert outcome.e2e_ms.tolist() == [100, 101, 102, 103]
    decoder = RankedListDecoder(StaticRegistry())
    for out, j in zip(outcome.outputs, good, strict=True):
        ranked = decoder.decode(out.value)
        assert out.key == str(j.user_id).encode()
        assert dict(out.headers) == {"request_id": j.request_id.encode(), "model": b"demo-lr",
                                     "model_version": b"v1"}  # fmt: skip
        assert (ranked.request_id, ranked.scored_at_ms) == (j.request_id, NOW_MS)
        expected = reference_scores(data, demo_model(data), j)
        best = sorted(expected.values(), reverse=True)[: j.top_k]
        np.testing.assert_allclose(ranked.scores, best, atol=1e-5)
        np.testing.assert_allclose([expected[i] for i in ranked.item_ids.tolist()], best,
                                   atol=1e-5)  # fmt: skip


def test_unknown_model_routes_to_configured_default(data: DemoData) -> None:
    encoder = JobEncoder(StaticRegistry())
    outcome = make_processor(data, default_model="demo-lr").process(
        [encoder.encode(job(data, 1, model="retired-model"))]
    )
    assert outcome.rejected == []
    ranked = RankedListDecoder(StaticRegistry()).decode(outcome.outputs[0].value)
    assert ranked.model == "retired-model"
    assert ranked.model_version == "v1"


def test_all_rejected_batch_fetches_nothing(data: DemoData) -> None:
    processor = make_processor(data)
    outcome = processor.process([b"junk", None])
    assert outcome.outputs == []
    assert [r.kind for r in outcome.rejected] == ["decode", "decode"]
    assert "features" not in outcome.stage_seconds
