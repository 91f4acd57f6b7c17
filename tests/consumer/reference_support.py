"""The test oracle: the per-candidate reference implementation applied to one demo job."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from consumer.devtools.demo_data import DemoData
from consumer.features.files import FileFeatureStore, gather_users
from consumer.models.registry import ModelRegistry
from schemas.records import ScoringJob
from scoring.batch import ScoringBatch
from scoring.model import LRModel
from scoring.reference import reference_predict


def demo_model(data: DemoData) -> LRModel:
    model = ModelRegistry.from_directory(data.models_dir).resolve("demo-lr")
    assert model is not None
    return model


def reference_probs(data: DemoData, model: LRModel, job: ScoringJob) -> NDArray[np.float64]:
    """Every candidate's probability under `model`, one candidate at a time, in job order."""
    store = FileFeatureStore.from_files(data.users_file, data.items_file)
    cands = np.asarray(job.candidates, dtype=np.int64)
    batch = ScoringBatch(
        user_ids=np.array([job.user_id], np.int64),
        contexts=[job.context],
        candidates=cands,
        row_splits=np.array([0, cands.size], np.int64),
        top_k=np.array([job.top_k], np.int32),
    )
    users = gather_users(store.users, batch.user_ids)
    return reference_predict(model, batch, users, store.items)


def reference_scores(data: DemoData, model: LRModel, job: ScoringJob) -> dict[int, float]:
    """Every candidate's probability under `model` by item id."""
    probs = reference_probs(data, model, job)
    return dict(zip(np.asarray(job.candidates).tolist(), probs.tolist(), strict=True))
