"""The models this scorer serves, by name; routing; and hot reload without a mixed batch.

A model directory holds one artifact directory per model (each with a manifest). `ModelSet` is an
immutable snapshot: the pipeline reads it once per batch, so a batch is never scored by two
versions of a model. `ModelRegistry.reload` loads and validates changed artifacts off the hot
path (the watcher thread), warms them, and swaps the snapshot reference in one assignment. A
failed load keeps the old model serving; the caller counts and logs it.

Threading: one writer at a time (reloads are serialised by a lock; `_stamps` is touched only
under it) and any number of lock-free readers: `current()` reads one reference, which CPython
assigns atomically, and a `ModelSet` never changes after construction.

Change detection: an artifact's stamp is (inode, size, mtime) of its manifest and weights, so an
atomic directory swap (`scoring.model.save_model`) and an in-place rewrite of either file are both
seen. A stamp that moves while an artifact is being read means a writer raced the reader: the
result is discarded and the artifact is read again on the next check. Directories whose name starts
with "." are writers' staging areas and are never read. A removed artifact keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from consumer.errors import ModelError
from scoring.batch import ScoringBatch
from scoring.errors import ModelLoadError
from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer
from scoring.model import MANIFEST, WEIGHTS, LRModel, load_model

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class ModelSet:
    """An immutable set of served models with the routing rules."""

    models: Mapping[str, LRModel]
    default_model: str = ""
    shadows: Mapping[str, str] = field(default_factory=dict)  # served model -> shadow model

    def resolve(self, name: str) -> LRModel | None:
        """The model serving jobs that name `name`, or None when none does."""
        model = self.models.get(name)
        if model is None and self.default_model:
            return self.models.get(self.default_model)
        return model

    def shadow_for(self, name: str) -> LRModel | None:
        """The model scored alongside `name` for comparison only, if one is configured."""
        shadow = self.shadows.get(name)
        return self.models.get(shadow) if shadow else None

    def all(self) -> list[LRModel]:
        return list(self.models.values())


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """An artifact that could not be loaded; `directory.name` labels metrics."""

    directory: Path
    reason: str


@dataclass(frozen=True, slots=True)
class ReloadResult:
    loaded: list[LRModel]
    failed: list[LoadFailure]


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


def _stamp(artifact: Path) -> Stamp:
    parts = []
    for name in (MANIFEST, WEIGHTS):
        try:
            st = (artifact / name).stat()
        except OSError:
            parts.append((-1, -1, -1))
            continue
        parts.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(parts)


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
        self._lock = threading.Lock()
        self._stamps: dict[Path, Stamp] = {}
        self._sources: dict[str, Path] = {}  # model name -> the artifact directory serving it
        self._current = ModelSet({}, default_model, dict(shadows or {}))
        result = self.reload()
        if result.failed:
            first = result.failed[0]
            raise ModelError(f"cannot load model at {first.directory}: {first.reason}")
        self._check_routes()

    @classmethod
    def from_directory(
        cls, directory: Path, default_model: str = "", shadows: Mapping[str, str] | None = None
    ) -> ModelRegistry:
        if not directory.is_dir():
            raise ModelError(f"model directory {directory} does not exist")
        return cls(directory, default_model, shadows)

    @property
    def directory(self) -> Path:
        return self._directory

    def current(self) -> ModelSet:
        """The snapshot to use for one whole batch."""
        return self._current

    def resolve(self, name: str) -> LRModel | None:
        return self._current.resolve(name)

    def all(self) -> list[LRModel]:
        return self._current.all()

    def _check_routes(self) -> None:
        current = self._current
        names = set(current.models)
        if not names:
            raise ModelError(f"no model artifacts (*/{MANIFEST}) in {self._directory}")
        wanted = (
            {current.default_model} - {""} | set(current.shadows) | set(current.shadows.values())
        )
        missing = wanted - names
        if missing:
            raise ModelError(f"configured model(s) {sorted(missing)} not among {sorted(names)}")
        for served, shadow in current.shadows.items():
            if served == shadow:
                raise ModelError(f"model {served!r} cannot shadow itself")

    def reload(self) -> ReloadResult:
        """Load artifacts that changed since the last check; swap the snapshot if any loaded."""
        with self._lock:
            models = dict(self._current.models)
            loaded: list[LRModel] = []
            failed: list[LoadFailure] = []
            for artifact in self._artifacts():
                stamp = _stamp(artifact)
                if self._stamps.get(artifact) == stamp:
                    continue
                outcome = self._load(artifact, stamp)
                if isinstance(outcome, LoadFailure):
                    failed.append(outcome)
                elif outcome is not None:
                    models[outcome.name] = outcome
                    loaded.append(outcome)
            if loaded:
                current = self._current
                self._current = ModelSet(models, current.default_model, current.shadows)
            return ReloadResult(loaded, failed)

    def _artifacts(self) -> list[Path]:
        return sorted(
            m.parent
            for m in self._directory.glob(f"*/{MANIFEST}")
            if not m.parent.name.startswith(".")
        )

    def _load(self, artifact: Path, stamp: Stamp) -> LRModel | LoadFailure | None:
        """The artifact's validated model, a failure, or None if a writer raced the read."""
        try:
            model = self._loader(artifact)
            _warm(model)
        except Exception as exc:  # any artifact problem must keep the old model serving
            if _stamp(artifact) != stamp:
                return None
            self._stamps[artifact] = stamp  # a broken artifact is reported once, not every check
            log.error("keeping the old model: cannot load %s: %s", artifact, exc)
            return LoadFailure(artifact, str(exc))
        if _stamp(artifact) != stamp:
            log.info("artifact %s changed while being read; reading it again later", artifact)
            return None
        self._stamps[artifact] = stamp
        owner = self._sources.setdefault(model.name, artifact)
        if owner != artifact:
            reason = f"model name {model.name!r} is already served from {owner}"
            log.error("ignoring %s: %s", artifact, reason)
            return LoadFailure(artifact, reason)
        log.info("loaded model %s version %s from %s", model.name, model.version, artifact)
        return model
