"""The service over Parquet snapshots: per-item kernel state built at start-up (before any fork)
and prepared, not built on the scoring thread, when the watcher swaps in a new item snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import load_config
from consumer.features.parquet import write_entity_parquet
from consumer.features.snapshot import ITEMS, SnapshotStore
from consumer.features.source import BatchFeatures
from consumer.metrics import Metrics
from consumer.service import Service
from consumer.wiring import build_feature_source, build_scorer, load_models
from scoring.model import save_model
from scoring.synthetic import demo_spec, random_model


def _write(root: Path, brands: list[str | None], mtime_s: int) -> None:
    ids = np.array([3, 1, 2], np.int64)
    write_entity_parquet(root / "items.parquet", "item_id", ids, {"brand": brands},
                         {"price": [1.0, 2.0, 3.0]})  # fmt: skip
    os.utime(root / "items.parquet", (mtime_s, mtime_s))


def _config(root: Path) -> dict[str, str]:
    save_model(random_model("demo-lr", "v1", demo_spec(), hash_bits=10), root / "models" / "m")
    _write(root, ["a", "b", None], 1_000)
    write_entity_parquet(root / "users.parquet", "user_id", np.array([1], np.int64),
                         {"segment": ["s"]}, {})  # fmt: skip
    return {
        "STREAM_SCORER__MODELS__DIRECTORY": str(root / "models"),
        "STREAM_SCORER__FEATURES__USERS_FILE": str(root / "users.parquet"),
        "STREAM_SCORER__FEATURES__ITEMS_FILE": str(root / "items.parquet"),
        "STREAM_SCORER__SERVER__ENABLED": "false",
    }


def test_start_up_builds_the_item_state_of_every_model(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    models = load_models(config)
    features = build_feature_source(config, Metrics(CollectorRegistry()), ManualClock())
    assert isinstance(features, SnapshotStore)
    scorer = build_scorer(models, features)
    assert scorer.items.misses == len(models.all()) == 1
    for model in models.all():  # already there: the workers forked now share it
        scorer.item_state(model, features.items)
    assert scorer.items.misses == 1


def test_a_reloaded_item_snapshot_arrives_with_its_kernel_state(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    registry = CollectorRegistry()
    service = Service(config, registry=registry, clock=ManualClock())
    try:
        watcher = service.snapshot_watcher()
        assert watcher is not None
        rows = registry.get_sample_value("stream_scorer_feature_snapshot_rows", {"entity": ITEMS})
        assert rows == 3
        _write(tmp_path, ["x", "y", "z"], 2_000)
        assert watcher.check_once() == {ITEMS: "success"}
        assert service.scorer.prepared == 1
        features = service.features
        assert isinstance(features, SnapshotStore)
        model = service.models.all()[0]
        misses = service.scorer.items.misses
        service.scorer.item_state(model, BatchFeatures.defaults().items)  # another table: built
        service.scorer.item_state(model, features.items)  # the new snapshot's: adopted
        assert service.scorer.items.misses == misses + 1
        assert service.scorer.prepared == 0
    finally:
        service.close()
