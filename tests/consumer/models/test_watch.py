"""ModelWatcher: reload results become metrics; the thread picks up new versions and stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry, ReloadResult
from consumer.models.watch import ModelWatcher
from scoring.model import WEIGHTS, LRModel, save_model
from scoring.synthetic import demo_spec, random_model

BITS = 8


def model(name: str, version: str, seed: int = 0) -> LRModel:
    return random_model(name, version, demo_spec(), hash_bits=BITS, seed=seed)


def served_version(registry: ModelRegistry, name: str) -> str:
    served = registry.resolve(name)
    assert served is not None
    return served.version


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, ModelRegistry, Metrics]:
    root = tmp_path / "models"
    save_model(model("ctr", "v1"), root / "ctr-dir")  # directory name differs from model name
    registry = ModelRegistry.from_directory(root)
    metrics = Metrics(CollectorRegistry())
    metrics.model_info.labels("ctr", "v1").set(1)  # as the service publishes at start
    return root, registry, metrics


def sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(f"stream_scorer_{name}", labels)


def test_new_version_moves_model_info_and_counts_success(
    setup: tuple[Path, ModelRegistry, Metrics],
) -> None:
    root, registry, metrics = setup
    watcher = ModelWatcher(registry, metrics, interval_s=5)
    save_model(model("ctr", "v2", seed=1), root / "ctr-dir")
    result = watcher.check_once()
    assert [m.version for m in result.loaded] == ["v2"]
    assert served_version(registry, "ctr") == "v2"
    assert sample(metrics, "model_reloads_total", {"model": "ctr", "result": "success"}) == 1
    assert sample(metrics, "model_info", {"model": "ctr", "version": "v2"}) == 1
    assert sample(metrics, "model_info", {"model": "ctr", "version": "v1"}) is None


def test_nothing_changed_publishes_nothing(setup: tuple[Path, ModelRegistry, Metrics]) -> None:
    _, registry, metrics = setup
    result = ModelWatcher(registry, metrics, interval_s=5).check_once()
    assert (result.loaded, result.failed) == ([], [])
    assert sample(metrics, "model_reloads_total", {"model": "ctr", "result": "success"}) is None
    assert sample(metrics, "model_info", {"model": "ctr", "version": "v1"}) == 1


def test_failure_is_counted_under_the_directory_name_and_old_version_serves(
    setup: tuple[Path, ModelRegistry, Metrics],
) -> None:
    root, registry, metrics = setup
    save_model(model("ctr", "v2", seed=1), root / "ctr-dir")
    np.save(root / "ctr-dir" / WEIGHTS, np.full(1 << BITS, np.nan, np.float32))
    result = ModelWatcher(registry, metrics, interval_s=5).check_once()
    assert [f.directory.name for f in result.failed] == ["ctr-dir"]
    assert served_version(registry, "ctr") == "v1"
    failures = {"model": "ctr-dir", "result": "failure"}
    assert sample(metrics, "model_reloads_total", failures) == 1
    assert sample(metrics, "model_info", {"model": "ctr", "version": "v1"}) == 1


def test_same_version_rewritten_keeps_one_info_series(
    setup: tuple[Path, ModelRegistry, Metrics],
) -> None:
    root, registry, metrics = setup
    save_model(model("ctr", "v1", seed=5), root / "ctr-dir")
    ModelWatcher(registry, metrics, interval_s=5).check_once()
    assert sample(metrics, "model_info", {"model": "ctr", "version": "v1"}) == 1
    assert sample(metrics, "model_reloads_total", {"model": "ctr", "result": "success"}) == 1


def test_thread_picks_up_a_new_version_and_stops(
    setup: tuple[Path, ModelRegistry, Metrics],
) -> None:
    root, registry, metrics = setup
    watcher = ModelWatcher(registry, metrics, interval_s=0.02)
    watcher.start()
    try:
        save_model(model("ctr", "v2", seed=1), root / "ctr-dir")
        wait_until(lambda: served_version(registry, "ctr") == "v2")
    finally:
        watcher.stop()
    assert "model-watcher" not in {t.name for t in threading.enumerate()}
    assert sample(metrics, "model_info", {"model": "ctr", "version": "v2"}) == 1


def test_thread_survives_a_failing_check(
    setup: tuple[Path, ModelRegistry, Metrics], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, registry, metrics = setup
    real_reload = registry.reload
    calls: list[int] = []

    def flaky_reload() -> ReloadResult:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk went away")
        return real_reload()

    monkeypatch.setattr(registry, "reload", flaky_reload)
    watcher = ModelWatcher(registry, metrics, interval_s=0.02)
    save_model(model("ctr", "v2", seed=1), root / "ctr-dir")
    watcher.start()
    try:
        wait_until(lambda: served_version(registry, "ctr") == "v2")
    finally:
        watcher.stop()
    assert len(calls) >= 2


def test_zero_interval_disables_the_thread(setup: tuple[Path, ModelRegistry, Metrics]) -> None:
    root, registry, metrics = setup
    watcher = ModelWatcher(registry, metrics, interval_s=0)
    assert not watcher.enabled
    watcher.start()
    try:
        assert "model-watcher" not in {t.name for t in threading.enumerate()}
        save_model(model("ctr", "v2", seed=1), root / "ctr-dir")
        time.sleep(0.1)
        assert served_version(registry, "ctr") == "v1"
    finally:
        watcher.stop()
