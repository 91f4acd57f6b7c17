"""Small deterministic fixtures shared by the scoring tests (16-bit tables keep them fast)."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.batch import ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.model import LRModel
from scoring.spec import FeatureSpec
from scoring.synthetic import demo_spec, random_items, random_model, random_users

N_USERS = 200


@pytest.fixture
def spec() -> FeatureSpec:
    return demo_spec()


@pytest.fixture
def model(spec: FeatureSpec) -> LRModel:
    return random_model("ctr", "v1", spec, hash_bits=16, seed=7)


@pytest.fixture
def items(spec: FeatureSpec) -> ItemTable:
    raw = random_items(3000, spec, seed=11)
    return ItemTable.from_raw(raw.ids, raw.categorical, raw.dense)


@pytest.fixture
def user_table(spec: FeatureSpec) -> UserFeatures:
    raw = random_users(N_USERS, spec, seed=13)
    return UserFeatures.from_raw(raw.categorical, raw.dense)


def batch_of(
    lists: list[list[int]], top_k: list[int], contexts: list[dict[str, str]] | None = None
) -> ScoringBatch:
    """A batch from explicit candidate lists (user ids 0..n-1)."""
    n = len(lists)
    splits = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(c) for c in lists], out=splits[1:])
    flat = [c for cands in lists for c in cands]
    return ScoringBatch(
        user_ids=np.arange(n, dtype=np.int64),
        contexts=contexts if contexts is not None else [{"device": "ios"} for _ in range(n)],
        candidates=np.array(flat, dtype=np.int64),
        row_splits=splits,
        top_k=np.array(top_k, dtype=np.int32),
    )
