"""Feature snapshots: format by suffix, hot reload (validated, swapped, failures keep the old one),
metrics, and kernel state prepared off the scoring thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.errors import ConfigError
from consumer.features.files import FileFeatureStore, gather_users, write_entity_csv
from consumer.features.parquet import write_entity_parquet
from consumer.features.prepared import PreparedScorer, warm
from consumer.features.snapshot import (
    ITEMS,
    USERS,
    SnapshotStore,
    check_compatible,
    file_format,
    load_entity_file,
    stamp_of,
    stamp_token,
)
from consumer.features.snapshot_watch import SnapshotWatcher, publish_loaded
from consumer.metrics import Metrics
from scoring.features import ItemTable
from scoring.kernel import Scorer
from scoring.synthetic import demo_spec, make_batch, random_model

IDS = np.array([5, 1, 3], np.int64)


def write_items(path: Path, brands: list[str | None], mtime_s: int = 1_000) -> None:
    dense: dict[str, list[float | None]] = {"price": [1.0, 2.0, None]}
    write_entity_parquet(path, "item_id", IDS, {"brand": brands}, dense)
    os.utime(path, (mtime_s, mtime_s))  # distinct mtimes even within one clock tick


def sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(f"stream_scorer_{name}", labels)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, SnapshotStore, Metrics]:
    items = tmp_path / "items.parquet"
    write_items(items, ["a", "b", "c"])
    users = tmp_path / "users.csv"
    write_entity_csv(users, "user_id", np.array([7], np.int64), {"segment": ["s"]}, {})
    store = SnapshotStore.open(users, items, "auto")
    return items, store, Metrics(CollectorRegistry())


def test_format_follows_the_suffix_unless_configured(tmp_path: Path) -> None:
    assert file_format(Path("x.parquet")) == "parquet"
    assert file_format(Path("x.PQ")) == "parquet"
    assert file_format(Path("x.csv")) == "csv"
    assert file_format(Path("x.parquet"), "csv") == "csv"
    path = tmp_path / "items.data"
    write_items(path, ["a", None, "c"])
    assert len(load_entity_file(path, "parquet")) == 3
    with pytest.raises(ConfigError):
        load_entity_file(path)  # read as CSV: not a valid feature file


def test_store_serves_both_snapshots_and_publishes_them(
    setup: tuple[Path, SnapshotStore, Metrics],
) -> None:
    _, store, metrics = setup
    features = store.fetch_now(np.array([7, 8], np.int64), np.zeros(0, np.int64))
    assert features.users.categorical["segment"][1] == 0  # unknown user: missing
    assert features.items is store.items
    assert store.items.ids.tolist() == [1, 3, 5]
    publish_loaded(store, metrics)
    assert sample(metrics, "feature_snapshot_rows", {"entity": ITEMS}) == 3
    assert sample(metrics, "feature_snapshot_rows", {"entity": USERS}) == 1
    assert sample(metrics, "feature_snapshot_timestamp_seconds", {"entity": ITEMS}) == 1_000


def test_changed_file_is_loaded_prepared_and_swapped(
    setup: tuple[Path, SnapshotStore, Metrics],
) -> None:
    path, store, metrics = setup
    prepared: list[ItemTable] = []
    watcher = SnapshotWatcher(store, metrics, ManualClock(), 5, prepared.append)
    assert watcher.check_once() == {}  # nothing changed
    old = store.items
    write_items(path, ["x", "y", "z"], mtime_s=2_000)
    assert watcher.check_once() == {ITEMS: "success"}
    assert store.items is not old
    assert store.items.token != old.token
    assert prepared == [store.items]  # prepared before it was swapped in
    assert FileFeatureStore.items.fget(store) is store.items  # type: ignore[attr-defined]
    assert sample(metrics, "feature_snapshot_loads_total", {"entity": ITEMS, "result": "success"})
    assert sample(metrics, "feature_snapshot_timestamp_seconds", {"entity": ITEMS}) == 2_000
    assert sample(metrics, "feature_snapshot_load_seconds_count", {"entity": ITEMS}) == 1
    assert watcher.check_once() == {}  # the new version is the serving one


def test_a_bad_snapshot_keeps_the_old_one_and_is_reported_once(
    setup: tuple[Path, SnapshotStore, Metrics],
) -> None:
    path, store, metrics = setup
    watcher = SnapshotWatcher(store, metrics, ManualClock(), 5)
    old = store.items
    path.write_bytes(b"truncated")
    assert watcher.check_once() == {ITEMS: "failure"}
    assert watcher.check_once() == {}  # the same broken version is not retried every check
    assert store.items is old
    failures = {"entity": ITEMS, "result": "failure"}
    assert sample(metrics, "feature_snapshot_loads_total", failures) == 1
    write_items(path, ["a", "b", "d"], mtime_s=3_000)
    assert watcher.check_once() == {ITEMS: "success"}


def test_a_snapshot_that_drops_a_column_or_every_row_is_rejected(
    setup: tuple[Path, SnapshotStore, Metrics],
) -> None:
    path, store, metrics = setup
    old = store.items
    write_entity_parquet(path, "item_id", IDS, {"brand": ["a", "b", "c"]}, {})  # no price
    assert SnapshotWatcher(store, metrics, ManualClock(), 5).check_once() == {ITEMS: "failure"}
    assert store.items is old
    with pytest.raises(ConfigError, match=r"lacks column\(s\) price \(dense\)"):
        check_compatible(ITEMS, load_entity_file(path), old)
    empty = ItemTable.from_columns(
        np.zeros(0, np.int64), {"brand": np.zeros(0, np.uint64)}, {"price": np.zeros(0, np.float32)}
    )
    with pytest.raises(ConfigError, match="is empty"):
        check_compatible(ITEMS, empty, old)


def test_a_failing_prepare_keeps_the_old_snapshot(
    setup: tuple[Path, SnapshotStore, Metrics],
) -> None:
    path, store, metrics = setup
    old = store.items

    def broken(_table: ItemTable) -> None:
        raise MemoryError("no room for the kernel state")

    write_items(path, ["q", "r", "s"], mtime_s=4_000)
    watcher = SnapshotWatcher(store, metrics, ManualClock(), 5, broken)
    assert watcher.check_once() == {ITEMS: "failure"}
    assert store.items is old


def test_watcher_thread_reloads_and_stops(setup: tuple[Path, SnapshotStore, Metrics]) -> None:
    path, store, metrics = setup
    loaded = threading.Event()
    watcher = SnapshotWatcher(store, metrics, ManualClock(), 0.02, lambda _t: loaded.set())
    assert watcher.enabled
    watcher.start()
    try:
        write_items(path, ["m", "n", "o"], mtime_s=5_000)
        assert loaded.wait(10)
    finally:
        watcher.stop()
    assert not SnapshotWatcher(store, metrics, ManualClock(), 0).enabled


def test_prepared_state_is_adopted_instead_of_built_on_the_scoring_thread() -> None:
    spec = demo_spec()
    model = random_model("m", "1", spec, hash_bits=10, seed=1)
    items = ItemTable.from_raw([1, 2, 3, 4], {"category": ["a", "b", None, "a"]}, {})
    batch = make_batch(np.random.default_rng(3), spec, items.ids, 5, 4, 3)
    features = gather_users(ItemTable.from_raw([0], {}, {}), batch.user_ids)
    scorer = PreparedScorer()
    builder = threading.Thread(target=scorer.prepare, args=([model], items))
    builder.start()
    builder.join()
    assert scorer.prepared == 1
    got = scorer.predict(model, batch, features, items)
    assert scorer.items.misses == 0  # adopted: the scoring thread never built it
    assert scorer.prepared == 0
    np.testing.assert_array_equal(got, Scorer().predict(model, batch, features, items))


def test_warm_builds_the_state_before_the_first_batch() -> None:
    model = random_model("m", "1", demo_spec(), hash_bits=10, seed=1)
    items = ItemTable.from_raw([1, 2], {"brand": ["a", "b"]}, {})
    scorer = PreparedScorer()
    warm(scorer, [model], items)
    assert scorer.items.misses == 1
    scorer.item_state(model, items)
    assert (scorer.items.hits, scorer.items.misses) == (1, 1)


def test_state_prepared_for_other_weights_is_not_adopted() -> None:
    spec = demo_spec()
    items = ItemTable.from_raw([1, 2], {"brand": ["a", "b"]}, {})
    scorer = PreparedScorer()
    scorer.prepare([random_model("m", "1", spec, hash_bits=10, seed=1)], items)
    rebuilt = random_model("m", "1", spec, hash_bits=10, seed=2)  # same name and version
    scorer.item_state(rebuilt, items)
    assert scorer.items.misses == 1  # built for the weights actually served


def test_snapshot_tokens_follow_the_file_version(
    setup: tuple[Path, SnapshotStore, Metrics],
) -> None:
    path, store, metrics = setup
    first = store.items.token
    stamp = stamp_of(path)
    assert stamp is not None
    assert first == stamp_token(path, stamp)  # no digest of a million rows at start-up
    write_items(path, ["a", "b", "c"], mtime_s=6_000)  # same content, new version
    SnapshotWatcher(store, metrics, ManualClock(), 5).check_once()
    assert store.items.token not in (first, 0)
