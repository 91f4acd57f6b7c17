"""The models this scorer serves, by name, and how a job's model name routes to one.

A model directory holds one artifact directory per model (each with a manifest). All are loaded
and validated before the scorer consumes anything; a job naming an unknown model is routed to the
configured default model, or rejected with a clear reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from consumer.errors import ModelError
from scoring.errors import ModelLoadError
from scoring.model import LRModel, load_model

log = logging.getLogger(__name__)


class ModelRegistry:
    """Immutable mapping from model name to the loaded model."""

    def __init__(self, models: Mapping[str, LRModel], default_model: str = "") -> None:
        if default_model and default_model not in models:
            raise ModelError(f"default model {default_model!r} is not among {sorted(models)}")
        self._models = dict(models)
        self._default = models.get(default_model) if default_model else None

    @classmethod
    def from_directory(cls, directory: Path, default_model: str = "") -> ModelRegistry:
        if not directory.is_dir():
            raise ModelError(f"model directory {directory} does not exist")
        models: dict[str, LRModel] = {}
        for manifest in sorted(directory.glob("*/manifest.json")):
            try:
                model = load_model(manifest.parent)
            except ModelLoadError as exc:
                raise ModelError(f"cannot load model at {manifest.parent}: {exc}") from exc
            if model.name in models:
                raise ModelError(f"model {model.name!r} found twice in {directory}")
            models[model.name] = model
            log.info("loaded model %s version %s", model.name, model.version)
        if not models:
            raise ModelError(f"no model artifacts (*/manifest.json) in {directory}")
        return cls(models, default_model)

    def resolve(self, name: str) -> LRModel | None:
        """The model serving jobs that name `name`, or None when none does."""
        return self._models.get(name, self._default)

    def all(self) -> list[LRModel]:
        return list(self._models.values())
