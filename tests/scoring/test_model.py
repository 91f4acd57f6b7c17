"""Model save/load roundtrip and every validation failure of ``load_model``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scoring.errors import InputError, ModelLoadError, ScoringError
from scoring.model import LRModel, load_model, save_model


def test_roundtrip_preserves_everything(model: LRModel, tmp_path: Path) -> None:
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert (loaded.name, loaded.version, loaded.created_at) == ("ctr", "v1", model.created_at)
    assert loaded.hash_bits == 16
    assert loaded.spec == model.spec
    assert loaded.bias == model.bias
    np.testing.assert_array_equal(loaded.weights, model.weights)
    np.testing.assert_array_equal(loaded.dense_weights, model.dense_weights)
    assert not loaded.weights.flags.writeable


def test_save_replaces_existing_directory_without_leftovers(model: LRModel, tmp_path: Path) -> None:
    save_model(model, tmp_path / "m")
    (tmp_path / "m" / "stale.txt").write_text("old")
    save_model(model, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["manifest.json", "weights.npy"]


def _edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        path = directory / "manifest.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return apply


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return change


def _write_manifest(text: str) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        (directory / "manifest.json").write_text(text)

    return apply


def _save_weights(array: np.ndarray[Any, Any]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        np.save(directory / "weights.npy", array)

    return apply


def _poison(value: float) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        weights = np.load(directory / "weights.npy")
        weights[123] = value
        np.save(directory / "weights.npy", weights)

    return apply


BAD_DENSE = {"name": "user.age", "mean": 0, "std": 0, "default": 0}

CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing manifest", lambda d: (d / "manifest.json").unlink(), "missing manifest.json"),
    ("bad json", _write_manifest("{not json"), "not valid JSON"),
    ("manifest not object", _write_manifest("[]"), "must be a dict"),
    ("wrong format version", _edit_manifest(_set("format_version", value=2)), "format_version 2"),
    ("wrong format", _edit_manifest(_set("format", value="other")), "format must be"),
    ("unknown key", _edit_manifest(_set("extra", value=1)), "unknown keys \\['extra'\\]"),
    ("missing weights file", lambda d: (d / "weights.npy").unlink(), "missing weights.npy"),
    ("weight shape mismatch", _save_weights(np.zeros(100, np.float32)), "has shape \\(100,\\)"),
    ("wrong dtype", _save_weights(np.zeros(1 << 16, np.float64)), "dtype float64"),
    ("NaN weight", _poison(float("nan")), "weights contains NaN"),
    ("inf weight", _poison(float("inf")), "weights contains inf"),
    ("hash_bits too small", _edit_manifest(_set("hash_bits", value=7)), "hash_bits must be"),
    ("hash_bits too large", _edit_manifest(_set("hash_bits", value=31)), "hash_bits must be"),
    (
        "declared shape mismatch",
        _edit_manifest(_set("weights", "shape", value=[10])),
        "does not match hash_bits",
    ),
    (
        "unknown field in cross",
        _edit_manifest(_set("spec", "crosses", value=[["user.nope", "item.id"]])),
        "unknown field 'user.nope'",
    ),
    (
        "malformed cross",
        _edit_manifest(_set("spec", "crosses", value=[["user.segment"]])),
        "malformed cross",
    ),
    (
        "dense weights length mismatch",
        _edit_manifest(_set("dense_weights", value=[0.5])),
        "dense_weights has 1 values for 4 features",
    ),
    ("NaN bias", _edit_manifest(_set("bias", value=float("nan"))), "bias must hold finite"),
    ("bad dense std", _edit_manifest(_set("spec", "dense", value=[BAD_DENSE] * 4)), "std must be"),
]


@pytest.mark.parametrize(
    ("corrupt", "message"), [(c, m) for _, c, m in CORRUPTIONS], ids=[n for n, _, _ in CORRUPTIONS]
)
def test_invalid_model_directory_raises_model_load_error(
    model: LRModel, tmp_path: Path, corrupt: Callable[[Path], None], message: str
) -> None:
    directory = tmp_path / "m"
    save_model(model, directory)
    corrupt(directory)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(directory)
    assert info.value.path == directory
    assert str(directory) in str(info.value)
    assert isinstance(info.value, ScoringError)


def test_missing_directory_is_a_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"missing manifest\.json"):
        load_model(tmp_path / "absent")


def test_failing_load_returns_nothing_and_leaves_previous_model_usable(
    model: LRModel, tmp_path: Path
) -> None:
    save_model(model, tmp_path / "good")
    save_model(model, tmp_path / "bad")
    _poison(float("nan"))(tmp_path / "bad")
    current = load_model(tmp_path / "good")
    with contextlib.suppress(ModelLoadError):
        current = load_model(tmp_path / "bad")
    assert current.version == "v1"
    assert np.isfinite(current.weights).all()


def test_model_rejects_inconsistent_arrays(model: LRModel) -> None:
    with pytest.raises(InputError, match="dense_weights must have shape"):
        LRModel(
            model.name, model.version, model.created_at, model.hash_bits, model.spec,
            model.bias, model.weights, np.zeros(2, np.float32),
        )  # fmt: skip
