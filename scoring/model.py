"""The logistic-regression model record and its on-disk format.

A model directory holds two files:

- ``manifest.json``: ``format`` ("stream-scorer/lr"), ``format_version`` (1), ``name``,
  ``version``, ``created_at``, ``hash_bits``, ``bias``, ``spec`` (fields, crosses, dense features),
  ``dense_weights`` (one per dense feature, in spec order) and ``weights`` (file, dtype, shape);
- ``weights.npy``: the hashed weight table, float32, shape ``(2**hash_bits,)``.

Invariants: an ``LRModel`` always satisfies its own shape/dtype/finiteness rules (checked at
construction) and its arrays are read-only. ``load_model`` either returns a fully validated model or
raises ``ModelLoadError`` naming the problem and the path; it never returns a partial model.
``save_model`` writes into a temporary sibling directory and renames it into place, so readers never
see a half-written directory under the final name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from scoring.errors import InputError, ModelLoadError
from scoring.hashing import MAX_BITS, MIN_BITS
from scoring.spec import DenseFeature, FeatureSpec

FORMAT: Final = "stream-scorer/lr"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
WEIGHTS: Final = "weights.npy"
_MANIFEST_KEYS: Final = frozenset(
    {"format", "format_version", "name", "version", "created_at", "hash_bits", "bias", "spec"}
    | {"dense_weights", "weights"}
)
_SPEC_KEYS: Final = frozenset({"user_fields", "item_fields", "context_fields", "crosses", "dense"})
_DENSE_KEYS: Final = frozenset({"name", "mean", "std", "default"})


@dataclass(frozen=True, slots=True)
class LRModel:
    """A hashed logistic-regression model: ``p = sigmoid(bias + sum(w[index]) + dense)``."""

    name: str
    version: str
    created_at: str
    hash_bits: int
    spec: FeatureSpec
    bias: float
    weights: NDArray[np.float32]
    dense_weights: NDArray[np.float32]

    def __post_init__(self) -> None:
        if not (MIN_BITS <= self.hash_bits <= MAX_BITS):
            raise InputError(f"hash_bits must be in {MIN_BITS}..{MAX_BITS}, got {self.hash_bits}")
        if not math.isfinite(self.bias):
            raise InputError(f"bias must be finite, got {self.bias}")
        _check_array("weights", self.weights, (1 << self.hash_bits,))
        _check_array("dense_weights", self.dense_weights, (len(self.spec.dense),))
        self.weights.setflags(write=False)
        self.dense_weights.setflags(write=False)


def _check_array(what: str, array: NDArray[Any], shape: tuple[int, ...]) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        dtype = getattr(array, "dtype", type(array).__name__)
        raise InputError(f"{what} must be a float32 array, got {dtype}")
    if array.shape != shape:
        raise InputError(f"{what} must have shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        bad = "NaN" if np.isnan(array).any() else "inf"
        raise InputError(f"{what} contains {bad} values")


def save_model(model: LRModel, directory: Path) -> None:
    """Write ``model`` to ``directory`` (replacing it) via a temporary sibling and a rename."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        np.save(staging / WEIGHTS, model.weights, allow_pickle=False)
        text = json.dumps(_manifest(model), indent=2, allow_nan=False)
        (staging / MANIFEST).write_text(text + "\n", encoding="utf-8")
        _replace_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_dir(staging: Path, directory: Path) -> None:
    if not directory.exists():
        os.rename(staging, directory)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
    os.rename(directory, retired / "model")
    os.rename(staging, directory)
    shutil.rmtree(retired, ignore_errors=True)


def spec_to_json(spec: FeatureSpec) -> dict[str, object]:
    """The manifest's JSON form of a feature spec (what `spec_from_json` reads)."""
    return {
        "user_fields": list(spec.user_fields),
        "item_fields": list(spec.item_fields),
        "context_fields": list(spec.context_fields),
        "crosses": [list(c) for c in spec.crosses],
        "dense": [
            {"name": d.name, "mean": d.mean, "std": d.std, "default": d.default} for d in spec.dense
        ],
    }


def _manifest(model: LRModel) -> dict[str, object]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "version": model.version,
        "created_at": model.created_at,
        "hash_bits": model.hash_bits,
        "bias": float(model.bias),
        "spec": spec_to_json(model.spec),
        "dense_weights": [float(w) for w in model.dense_weights],
        "weights": {"file": WEIGHTS, "dtype": "float32", "shape": [1 << model.hash_bits]},
    }


def load_model(directory: Path) -> LRModel:
    """Load and fully validate a model directory, or raise ``ModelLoadError``."""
    directory = Path(directory)
    try:
        manifest = _read_manifest(directory / MANIFEST)
        return _build_model(directory, manifest)
    except ModelLoadError:
        raise
    except (InputError, ValueError, TypeError, KeyError, OSError) as exc:
        raise ModelLoadError(directory, str(exc)) from exc


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(path.parent, f"missing {MANIFEST}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(path.parent, f"{MANIFEST} is not valid JSON: {exc}") from exc
    manifest: dict[str, Any] = _expect(data, dict, MANIFEST)
    _check_keys(manifest, _MANIFEST_KEYS, MANIFEST)
    if manifest["format"] != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}, got {manifest['format']!r}")
    if manifest["format_version"] != FORMAT_VERSION:
        found = manifest["format_version"]
        raise ValueError(
            f"unsupported format_version {found!r} (this reader knows {FORMAT_VERSION})"
        )
    return manifest


def _build_model(directory: Path, manifest: dict[str, Any]) -> LRModel:
    bits = _expect(manifest["hash_bits"], int, "hash_bits")
    if isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"hash_bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    spec = spec_from_json(_expect(manifest["spec"], dict, "spec"))
    dense_weights = _parse_floats(manifest["dense_weights"], "dense_weights")
    if len(dense_weights) != len(spec.dense):
        n_dense = len(spec.dense)
        raise ValueError(f"dense_weights has {len(dense_weights)} values for {n_dense} features")
    return LRModel(
        name=_expect(manifest["name"], str, "name"),
        version=_expect(manifest["version"], str, "version"),
        created_at=_expect(manifest["created_at"], str, "created_at"),
        hash_bits=bits,
        spec=spec,
        bias=_parse_floats([manifest["bias"]], "bias")[0],
        weights=_load_weights(directory, manifest["weights"], bits),
        dense_weights=np.asarray(dense_weights, dtype=np.float32),
    )


def _load_weights(directory: Path, meta: Any, bits: int) -> NDArray[np.float32]:
    meta = _expect(meta, dict, "weights")
    _check_keys(meta, frozenset({"file", "dtype", "shape"}), "weights")
    if meta["file"] != WEIGHTS or meta["dtype"] != "float32":
        raise ValueError(f"weights must be {WEIGHTS!r} with dtype 'float32', got {meta!r}")
    if meta["shape"] != [1 << bits]:
        raise ValueError(f"weights shape {meta['shape']!r} does not match hash_bits={bits}")
    path = directory / WEIGHTS
    if not path.is_file():
        raise ValueError(f"missing {WEIGHTS}")
    array = np.load(path, allow_pickle=False)
    if array.dtype != np.float32:
        raise ValueError(f"{WEIGHTS} has dtype {array.dtype}, expected float32")
    if array.shape != (1 << bits,):
        raise ValueError(f"{WEIGHTS} has shape {array.shape}, expected {(1 << bits,)}")
    return np.ascontiguousarray(array)


def spec_from_json(raw: Any) -> FeatureSpec:
    """A feature spec from its manifest JSON form; ``ValueError`` names what is wrong."""
    raw = _expect(raw, dict, "spec")
    _check_keys(raw, _SPEC_KEYS, "spec")
    crosses = _expect(raw["crosses"], list, "spec.crosses")
    for cross in crosses:
        if not (
            isinstance(cross, list) and len(cross) == 2 and all(isinstance(c, str) for c in cross)
        ):
            raise ValueError(f"malformed cross {cross!r}: expected two field names")
    return FeatureSpec(
        user_fields=_str_tuple(raw["user_fields"], "spec.user_fields"),
        item_fields=_str_tuple(raw["item_fields"], "spec.item_fields"),
        context_fields=_str_tuple(raw["context_fields"], "spec.context_fields"),
        crosses=tuple((c[0], c[1]) for c in crosses),
        dense=tuple(_parse_dense(d) for d in _expect(raw["dense"], list, "spec.dense")),
    )


def _parse_dense(raw: Any) -> DenseFeature:
    entry = _expect(raw, dict, "spec.dense[]")
    _check_keys(entry, _DENSE_KEYS, "spec.dense[]")
    mean, std, default = _parse_floats([entry["mean"], entry["std"], entry["default"]], "dense")
    return DenseFeature(_expect(entry["name"], str, "dense name"), mean, std, default)


def _parse_floats(raw: Any, what: str) -> list[float]:
    values = _expect(raw, list, what)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{what} must hold finite numbers, got {v!r}")
    return [float(v) for v in values]


def _str_tuple(raw: Any, what: str) -> tuple[str, ...]:
    values = _expect(raw, list, what)
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{what} must be a list of strings, got {values!r}")
    return tuple(values)


def _expect(value: Any, kind: type[Any], what: str) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"{what} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _check_keys(mapping: dict[str, Any], expected: frozenset[str], what: str) -> None:
    missing = sorted(expected - mapping.keys())
    unknown = sorted(mapping.keys() - expected)
    if missing or unknown:
        raise ValueError(f"{what}: missing keys {missing}, unknown keys {unknown}")
