"""The HTTP feature source against a real `feast serve`: same ranked lists as the file store.

One Feast server per module (venv installed once per machine by scripts/feast-env.sh, feature repo
generated from the demo CSV files, SQLite online store, materialized from Parquet). Run alone
with ``pytest -m feast``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from consumer.aio import AsyncBridge
from consumer.clock import ManualClock
from consumer.config import Config, LimitsConfig, load_config
from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.generator import JobShape, generate_jobs
from consumer.features.fetcher import FeatureFetcher
from consumer.features.files import FileFeatureStore
from consumer.features.http import HttpFeatureSource
from consumer.features.source import FeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from consumer.stream.processor import BatchProcessor
from consumer.wiring import build_feature_source
from schemas.records import RankedList, ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobDecoder, JobEncoder, RankedListDecoder, RankedListEncoder
from scoring.kernel import Scorer
from tests.feast.server import FeastServer, FeatureRepo, build_feature_repo, feast_venv

pytestmark = pytest.mark.feast

NOW_MS = 1_800_000_000_000
UNKNOWN_ITEMS = np.arange(10**9, 10**9 + 40, dtype=np.int64)  # not in Feast, not in the files


@dataclass(frozen=True, slots=True)
class Served:
    data: DemoData
    repo: FeatureRepo
    url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("feast")
    data = write_demo_data(root, n_items=3000, n_users=300, seed=11, hash_bits=14)
    venv = feast_venv()
    repo = build_feature_repo(venv, root / "repo", data.users_file, data.items_file)
    with FeastServer(venv, repo, root / "feast-serve.log") as server:
        yield Served(data, repo, server.url)


@pytest.fixture
def bridge() -> Iterator[AsyncBridge]:
    b = AsyncBridge()
    yield b
    b.close()


def http_config(served: Served, **overrides: Any) -> Config:
    base = load_config({}, base_dir=str(served.data.root))
    features = replace(
        base.features, source="http", url=served.url, user_features=served.repo.users.refs(),
        item_features=served.repo.items.refs(), timeout_ms=5000, max_rows_per_request=400,
    )  # fmt: skip
    return replace(base, features=replace(features, **overrides))


def processor(data: DemoData, source: FeatureSource, bridge: AsyncBridge) -> BatchProcessor:
    return BatchProcessor(
        decoder=JobDecoder(StaticRegistry()), encoder=RankedListEncoder(StaticRegistry()),
        models=ModelRegistry.from_directory(data.models_dir), scorer=Scorer(),
        fetcher=FeatureFetcher(source, bridge.loop), clock=ManualClock(now_ms=NOW_MS),
        limits=LimitsConfig(max_candidates=2000, max_top_k=100),
    )  # fmt: skip


def make_jobs(data: DemoData, n: int, seed: int) -> list[ScoringJob]:
    rng = np.random.default_rng(seed)
    items = np.concatenate([data.item_ids, UNKNOWN_ITEMS])
    users = np.concatenate([data.user_ids, np.array([10**8, 10**8 + 1], np.int64)])  # unknown
    shape = JobShape(mean_candidates=300, top_k=20)
    return list(generate_jobs(rng, users, items, n, shape, ManualClock(now_ms=NOW_MS)))


def ranked_lists(proc: BatchProcessor, jobs: list[ScoringJob]) -> list[RankedList]:
    encoder = JobEncoder(StaticRegistry())
    outcome = proc.process([encoder.encode(j) for j in jobs])
    assert outcome.rejected == []
    decoder = RankedListDecoder(StaticRegistry())
    return [decoder.decode(o.value) for o in outcome.outputs]


def assert_same(got: list[RankedList], want: list[RankedList]) -> None:
    assert len(got) == len(want) > 0
    for a, b in zip(got, want, strict=True):
        assert (a.request_id, a.user_id, a.degraded) == (b.request_id, b.user_id, False)
        assert a.item_ids.tolist() == b.item_ids.tolist()
        np.testing.assert_array_equal(a.scores, b.scores)


def test_http_features_rank_exactly_like_the_file_store(
    served: Served, bridge: AsyncBridge
) -> None:
    data = served.data
    registry = CollectorRegistry()
    source = build_feature_source(http_config(served), Metrics(registry), ManualClock())
    assert isinstance(source, HttpFeatureSource)
    files = FileFeatureStore.from_files(data.users_file, data.items_file)
    http_proc, file_proc = processor(data, source, bridge), processor(data, files, bridge)
    try:
        for seed in (1, 2):  # a cold item cache, then a mostly warm one
            jobs = make_jobs(data, 48, seed)
            assert_same(ranked_lists(http_proc, jobs), ranked_lists(file_proc, jobs))
    finally:
        bridge.call(source.close(), 10.0)

    def sample(name: str, entity: str) -> float:
        value = registry.get_sample_value(f"stream_scorer_{name}_total", {"entity": entity})
        return value or 0.0

    assert sample("feature_cache_hits", "item") > 0  # the second batch reused the first's items
    assert sample("feature_cache_misses", "item") == len(source.item_cache)
    assert sample("feature_rows_requested", "item") == len(source.item_cache)
    assert sample("feature_missing_values", "item") > 6 * UNKNOWN_ITEMS.size * 0.5
    assert (
        registry.get_sample_value("stream_scorer_feature_errors_total", {"kind": "timeout"}) is None
    )


def test_values_and_statuses_match_the_files(served: Served, bridge: AsyncBridge) -> None:
    data = served.data
    registry = CollectorRegistry()
    config = http_config(served, item_features="item_service")  # the feature service
    source = HttpFeatureSource.from_config(config.features, Metrics(registry), ManualClock())
    files = FileFeatureStore.from_files(data.users_file, data.items_file)
    ids = np.concatenate([data.item_ids[:500], UNKNOWN_ITEMS[:5]])
    users = np.array([3, 3, 10**8, 1], np.int64)
    try:
        got = bridge.call(source.fetch(users, ids), 30.0)
    finally:
        bridge.call(source.close(), 10.0)
    want = bridge.call(files.fetch(users, ids), 30.0)
    rows = files.items.index.lookup(np.unique(ids))
    table = got.items
    assert table.ids.tolist() == np.unique(ids).tolist()
    assert set(table.categorical) == set(files.items.categorical) == {
        "category", "brand", "seller", "price_bucket",
    }  # fmt: skip
    known = rows < len(files.items)
    for name, column in files.items.categorical.items():
        assert table.categorical[name][known].tolist() == column[rows[known]].tolist()
        assert not table.categorical[name][~known].any()
    for name, dense in files.items.dense.items():
        np.testing.assert_array_equal(table.dense[name][known], dense[rows[known]])
        assert np.isnan(table.dense[name][~known]).all()
    for name, column in want.users.categorical.items():
        assert got.users.categorical[name].tolist() == column.tolist()
    for name, dense in want.users.dense.items():
        np.testing.assert_array_equal(got.users.dense[name], dense)
    missing_files = sum(int((c[rows[known]] == 0).sum()) for c in files.items.categorical.values())
    missing_files += sum(int(np.isnan(d[rows[known]]).sum()) for d in files.items.dense.values())
    expected = missing_files + 5 * 6  # the unknown items: NOT_FOUND in all six features
    assert (
        registry.get_sample_value("stream_scorer_feature_missing_values_total", {"entity": "item"})
        == expected
    )


def test_warm_up_fills_the_item_cache(served: Served, bridge: AsyncBridge) -> None:
    registry = CollectorRegistry()
    config = http_config(served, max_rows_per_request=250, max_concurrency=2)
    source = HttpFeatureSource.from_config(config.features, Metrics(registry), ManualClock())
    try:
        loaded = bridge.call(source.warm_up(served.data.item_ids[:1200]), 30.0)
        features = bridge.call(
            source.fetch(np.array([1], np.int64), served.data.item_ids[100:700]), 30.0
        )
    finally:
        bridge.call(source.close(), 10.0)
    assert loaded == 1200
    assert len(source.item_cache) == 1200
    assert len(features.items) == 1200  # the cache snapshot covers the batch
    hits = registry.get_sample_value("stream_scorer_feature_cache_hits_total", {"entity": "item"})
    assert hits == 600
    rows = registry.get_sample_value(
        "stream_scorer_feature_rows_requested_total", {"entity": "item"}
    )
    assert rows == 1200
