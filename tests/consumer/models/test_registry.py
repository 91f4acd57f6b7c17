"""ModelRegistry: hot reload swaps whole snapshots, keeps old models on bad artifacts; routing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from consumer.errors import ModelError
from consumer.models.registry import ModelRegistry, ModelSet
from scoring.model import MANIFEST, WEIGHTS, LRModel, load_model, save_model
from scoring.synthetic import demo_spec, random_model

BITS = 8


def model(name: str, version: str, seed: int = 0) -> LRModel:
    return random_model(name, version, demo_spec(), hash_bits=BITS, seed=seed)


def version_of(registry: ModelRegistry, name: str) -> str:
    served = registry.current().models.get(name)
    assert served is not None
    return served.version


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    save_model(model("ctr", "v1"), root / "ctr")
    return root


def test_new_version_is_loaded_and_swapped(models_dir: Path) -> None:
    registry = ModelRegistry.from_directory(models_dir)
    save_model(model("ctr", "v2", seed=1), models_dir / "ctr")
    result = registry.reload()
    assert [(m.name, m.version) for m in result.loaded] == [("ctr", "v2")]
    assert result.failed == []
    assert version_of(registry, "ctr") == "v2"
    served = registry.resolve("ctr")
    assert served is not None
    np.testing.assert_array_equal(served.weights, model("ctr", "v2", seed=1).weights)


def test_unchanged_directory_keeps_the_same_snapshot(models_dir: Path) -> None:
    registry = ModelRegistry.from_directory(models_dir)
    before = registry.current()
    result = registry.reload()
    assert (result.loaded, result.failed) == ([], [])
    assert registry.current() is before


def test_batch_in_flight_keeps_its_snapshot(models_dir: Path) -> None:
    registry = ModelRegistry.from_directory(models_dir)
    in_flight = registry.current()  # what the pipeline holds for one batch
    save_model(model("ctr", "v2", seed=1), models_dir / "ctr")
    registry.reload()
    old = in_flight.resolve("ctr")
    assert old is not None
    assert old.version == "v1"
    assert version_of(registry, "ctr") == "v2"


def test_new_model_directory_is_added(models_dir: Path) -> None:
    registry = ModelRegistry.from_directory(models_dir)
    save_model(model("ranker", "r1"), models_dir / "ranker")
    registry.reload()
    assert sorted(registry.current().models) == ["ctr", "ranker"]
    assert version_of(registry, "ctr") == "v1"


def nan_weights(artifact: Path) -> None:
    np.save(artifact / WEIGHTS, np.full(1 << BITS, np.nan, np.float32), allow_pickle=False)


def bad_manifest(artifact: Path) -> None:
    (artifact / MANIFEST).write_text("{not json", encoding="utf-8")


def wrong_shape(artifact: Path) -> None:
    np.save(artifact / WEIGHTS, np.zeros(3, np.float32), allow_pickle=False)


def unknown_format(artifact: Path) -> None:
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize("corrupt", [nan_weights, bad_manifest, wrong_shape, unknown_format])
def test_corrupt_artifact_keeps_the_old_version_serving(
    models_dir: Path, corrupt: Callable[[Path], None]
) -> None:
    registry = ModelRegistry.from_directory(models_dir)
    before = registry.current()
    save_model(model("ctr", "v2", seed=1), models_dir / "ctr")
    corrupt(models_dir / "ctr")
    result = registry.reload()
    assert result.loaded == []
    assert [f.directory.name for f in result.failed] == ["ctr"]
    assert registry.current() is before
    assert version_of(registry, "ctr") == "v1"
    # reported once, not on every check; a fixed artifact is picked up
    assert registry.reload().failed == []
    save_model(model("ctr", "v3", seed=2), models_dir / "ctr")
    assert [m.version for m in registry.reload().loaded] == ["v3"]


def test_staging_directories_of_writers_are_ignored(models_dir: Path) -> None:
    registry = ModelRegistry.from_directory(models_dir)
    save_model(model("half-written", "x"), models_dir / "elsewhere")
    (models_dir / "elsewhere").rename(models_dir / ".ctr.staging")
    assert registry.reload().loaded == []
    assert sorted(registry.current().models) == ["ctr"]


def test_second_directory_claiming_a_served_name_is_refused(models_dir: Path) -> None:
    registry = ModelRegistry.from_directory(models_dir)
    save_model(model("ctr", "impostor"), models_dir / "ctr-copy")
    result = registry.reload()
    assert [f.directory.name for f in result.failed] == ["ctr-copy"]
    assert "already served" in result.failed[0].reason
    assert version_of(registry, "ctr") == "v1"


def test_artifact_rewritten_while_being_read_is_read_again(models_dir: Path) -> None:
    raced: list[bool] = []

    def racing_loader(artifact: Path) -> LRModel:
        loaded = load_model(artifact)
        if loaded.version == "v2" and not raced:
            raced.append(True)  # a writer replaces the artifact between our reads
            save_model(model("ctr", "v3", seed=2), artifact)
        return loaded

    registry = ModelRegistry(models_dir, loader=racing_loader)
    save_model(model("ctr", "v2", seed=1), models_dir / "ctr")
    first = registry.reload()
    assert (first.loaded, first.failed) == ([], [])
    assert version_of(registry, "ctr") == "v1"
    assert [m.version for m in registry.reload().loaded] == ["v3"]


def test_one_reload_publishes_all_its_changes_in_one_swap(models_dir: Path) -> None:
    save_model(model("ranker", "r1"), models_dir / "ranker")
    seen_during_load: list[tuple[str, str]] = []
    holder: list[ModelRegistry] = []

    def observing_loader(artifact: Path) -> LRModel:
        if holder:
            snap = holder[0].current()
            seen_during_load.append((snap.models["ctr"].version, snap.models["ranker"].version))
        return load_model(artifact)

    registry = ModelRegistry(models_dir, loader=observing_loader)
    holder.append(registry)
    save_model(model("ctr", "v2", seed=1), models_dir / "ctr")
    save_model(model("ranker", "r2", seed=1), models_dir / "ranker")
    registry.reload()
    assert seen_during_load == [("v1", "r1"), ("v1", "r1")]
    assert (version_of(registry, "ctr"), version_of(registry, "ranker")) == ("v2", "r2")


def test_concurrent_reloads_load_each_change_once(models_dir: Path) -> None:
    calls: list[str] = []

    def slow_loader(artifact: Path) -> LRModel:
        calls.append(artifact.name)
        time.sleep(0.05)
        return load_model(artifact)

    registry = ModelRegistry(models_dir, loader=slow_loader)
    save_model(model("ctr", "v2", seed=1), models_dir / "ctr")
    threads = [threading.Thread(target=registry.reload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["ctr", "ctr"]  # once at start, once for v2
    assert version_of(registry, "ctr") == "v2"


def test_default_model_serves_unknown_names(models_dir: Path) -> None:
    with_default = ModelRegistry.from_directory(models_dir, default_model="ctr").current()
    served = with_default.resolve("no-such-model")
    assert served is not None
    assert served.name == "ctr"
    without = ModelRegistry.from_directory(models_dir).current()
    assert without.resolve("no-such-model") is None
    named = without.resolve("ctr")
    assert named is not None
    assert named.name == "ctr"


def test_shadow_routing(models_dir: Path) -> None:
    save_model(model("challenger", "c1", seed=3), models_dir / "challenger")
    registry = ModelRegistry.from_directory(models_dir, shadows={"ctr": "challenger"})
    snap = registry.current()
    shadow = snap.shadow_for("ctr")
    assert shadow is not None
    assert (shadow.name, shadow.version) == ("challenger", "c1")
    assert snap.shadow_for("challenger") is None


@pytest.mark.parametrize(
    ("default_model", "shadows", "message"),
    [
        ("", {"ctr": "missing-shadow"}, "missing-shadow"),
        ("", {"missing-primary": "ctr"}, "missing-primary"),
        ("missing-default", {}, "missing-default"),
        ("", {"ctr": "ctr"}, "cannot shadow itself"),
    ],
)
def test_routes_to_unknown_models_fail_at_start(
    models_dir: Path, default_model: str, shadows: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        ModelRegistry.from_directory(models_dir, default_model, shadows)


def test_start_fails_on_missing_empty_or_corrupt_directories(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        ModelRegistry.from_directory(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no model artifacts"):
        ModelRegistry.from_directory(tmp_path / "empty")
    save_model(model("ctr", "v1"), tmp_path / "bad" / "ctr")
    nan_weights(tmp_path / "bad" / "ctr")
    with pytest.raises(ModelError, match="NaN"):
        ModelRegistry.from_directory(tmp_path / "bad")


def test_model_set_is_a_snapshot_of_its_models() -> None:
    a = model("a", "1")
    snap = ModelSet({"a": a})
    assert snap.all() == [a]
    assert snap.resolve("b") is None
