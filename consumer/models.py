"""The models this scorer serves, by name; routing; and hot reload without a mixed batch.

A model directory holds one artifact directory per model (each with a manifest). `ModelSet` is an
immutable snapshot: the pipeline reads it once per batch, so a batch is never scored by two
versions of a model. `ModelRegistry.reload` loads and validates changed artifacts off the hot
path (the watcher thread), warms them, and swaps the snapshot reference in one assignment. A
failed load keeps the old model serving; it is counted and logged by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from consumer.errors import ModelError
from scoring.batch import ScoringBatch
from scoring.errors import ModelLoadError, ScoringError
from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer
from scoring.model import LRModel, load_model

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class ModelSet:
    """An immutable set of served models with the routing rules."""

    models: Mapping[str, LRModel]
    default_model: str = ""
    shadows: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> LRModel | None:
        """The model serving jobs that name `name`, or None when none does."""
        model = self.models.get(name)
        if model is None and self.default_model:
            return self.models.get(self.default_model)
        return model

    def shadow_for(self, name: str) -> LRModel | None:
        shadow = self.shadows.get(name)
        return self.models.get(shadow) if shadow else None

    def all(self) -> list[LRModel]:
        return list(self.models.values())


@dataclass(frozen=True, slots=True)
class ReloadResult:
    loaded: list[LRModel]
    failed: list[tuple[str, str]]  # (artifact directory, reason)


def _warm(model: LRModel) -> None:
    """Score one tiny batch so a broken model fails here, not on live traffic."""
    batch = ScoringBatch(
        user_ids=np.zeros(1, np.int64),
        contexts=[{}],
        candidates=np.arange(1, 3, dtype=np.int64),
        row_splits=np.array([0, 2], np.int64),
        top_k=np.ones(1, np.int32),
    )
    empty = ItemTable.from_raw(np.zeros(0, np.int64), {}, {})
    scores = Scorer().predict(model, batch, UserFeatures(categorical={}, dense={}), empty)
    if not np.all(np.isfinite(scores)):
        raise ModelLoadError(Path(model.name), "warm-up produced non-finite scores")


class ModelRegistry:
    """Holds the current `ModelSet`; reloads it from the model directory on request."""

    def __init__(
        self,
        directory: Path,
        default_model: str = "",
        shadows: Mapping[str, str] | None = None,
        loader: Callable[[Path], LRModel] = load_model,
    ) -> None:
        self._directory = directory
        self._loader = loader
        self._stamps: dict[Path, float] = {}
        self._current = ModelSet({}, default_model, dict(shadows or {}))
        result = self.reload()
        if result.failed:
            where, reason = result.failed[0]
            raise ModelError(f"cannot load model at {where}: {reason}")
        self._check_routes()

    @classmethod
    def from_directory(
        cls, directory: Path, default_model: str = "", shadows: Mapping[str, str] | None = None
    ) -> ModelRegistry:
        if not directory.is_dir():
            raise ModelError(f"model directory {directory} does not exist")
        return cls(directory, default_model, shadows)

    def current(self) -> ModelSet:
        return self._current

    def resolve(self, name: str) -> LRModel | None:
        return self._current.resolve(name)

    def all(self) -> list[LRModel]:
        return self._current.all()

    def _check_routes(self) -> None:
        names = set(self._current.models)
        if not names:
            raise ModelError(f"no model artifacts (*/{MANIFEST}) in {self._directory}")
        wanted = {self._current.default_model} - {""} | set(self._current.shadows.values())
        missing = wanted - names
        if missing:
            raise ModelError(f"configured model(s) {sorted(missing)} not among {sorted(names)}")

    def reload(self) -> ReloadResult:
        """Load artifacts whose manifest changed; swap the snapshot if any loaded."""
        models = dict(self._current.models)
        loaded: list[LRModel] = []
        failed: list[tuple[str, str]] = []
        for manifest in sorted(self._directory.glob(f"*/{MANIFEST}")):
            stamp = _stamp(manifest)
            if self._stamps.get(manifest) == stamp:
                continue
            self._stamps[manifest] = stamp
            try:
                model = self._loader(manifest.parent)
                _warm(model)
            except ScoringError as exc:
                failed.append((str(manifest.parent), str(exc)))
                log.error("keeping the old model: cannot load %s: %s", manifest.parent, exc)
                continue
            old = models.get(model.name)
            if old is not None and old.version == model.version and old is not model:
                log.info("model %s version %s re-read; replacing it", model.name, model.version)
            models[model.name] = model
            loaded.append(model)
            log.info("loaded model %s version %s", model.name, model.version)
        if loaded:
            current = self._current
            self._current = ModelSet(models, current.default_model, current.shadows)
        return ReloadResult(loaded, failed)


def _stamp(manifest: Path) -> float:
    try:
        return manifest.stat().st_mtime_ns / 1e9
    except OSError:
        return -1.0
