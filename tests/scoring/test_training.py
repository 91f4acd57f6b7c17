"""Trainer parity: a scikit-learn model fitted on ``hashed_design`` serves identically."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from scoring.batch import ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer, sigmoid
from scoring.reference import reference_logits
from scoring.spec import FeatureSpec
from scoring.synthetic import random_contexts, random_model
from scoring.training import HashedDesign, hashed_design, model_from_coefficients

BITS = 12


def one_candidate_jobs(item_ids: NDArray[np.int64], contexts: list[dict[str, str]]) -> ScoringBatch:
    n = item_ids.size
    return ScoringBatch(
        user_ids=np.arange(n, dtype=np.int64),
        contexts=contexts,
        candidates=item_ids.astype(np.int64),
        row_splits=np.arange(n + 1, dtype=np.int64),
        top_k=np.ones(n, dtype=np.int32),
    )


def design_matrix(design: HashedDesign) -> sp.csr_matrix:
    ones = np.ones(design.indices.size)
    sparse = sp.csr_matrix(
        (ones, design.indices, design.indptr), shape=(design.n_rows, design.n_weights)
    )
    return sp.hstack([sparse, sp.csr_matrix(design.dense)], format="csr")


def test_design_rows_reproduce_served_logits(
    spec: FeatureSpec, items: ItemTable, user_table: UserFeatures
) -> None:
    model = random_model("m", "1", spec, hash_bits=BITS, seed=3)
    rng = np.random.default_rng(4)
    n = 300
    ids = np.where(rng.random(n) < 0.1, 10**12 + rng.integers(0, 9, n), rng.choice(items.ids, n))
    users = user_table.take(rng.integers(0, user_table.categorical["segment"].size, n))
    contexts = random_contexts(rng, spec, n)
    x = design_matrix(hashed_design(spec, BITS, users, contexts, items, ids))
    coef = np.concatenate([model.weights, model.dense_weights]).astype(np.float64)
    linear = x @ coef + model.bias
    batch = one_candidate_jobs(ids, contexts)
    np.testing.assert_allclose(linear, reference_logits(model, batch, users, items), atol=1e-9)


def test_sklearn_model_serves_with_identical_probabilities(
    spec: FeatureSpec, items: ItemTable, user_table: UserFeatures
) -> None:
    truth = random_model("truth", "0", spec, hash_bits=BITS, seed=5)
    rng = np.random.default_rng(6)
    n = 4000
    ids = np.where(rng.random(n) < 0.05, 10**12 + rng.integers(0, 50, n), rng.choice(items.ids, n))
    users = user_table.take(rng.integers(0, user_table.categorical["segment"].size, n))
    contexts = random_contexts(rng, spec, n)
    batch = one_candidate_jobs(ids, contexts)
    labels = rng.random(n) < sigmoid(Scorer().logits(truth, batch, users, items) + 2.0)
    x = design_matrix(hashed_design(spec, BITS, users, contexts, items, ids))
    train, test = np.arange(3000), np.arange(3000, n)

    clf = LogisticRegression(C=0.5, max_iter=3000, tol=1e-10).fit(x[train], labels[train])
    model = model_from_coefficients(
        "ctr", "trained", "2026-01-01T00:00:00+00:00", spec, BITS, clf.coef_[0], clf.intercept_[0]
    )
    held_out = one_candidate_jobs(ids[test], [contexts[i] for i in test])
    served = Scorer().predict(model, held_out, users.take(test), items)
    expected = clf.predict_proba(x[test])[:, 1]
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert np.ptp(expected) > 0.1  # the model learned something to compare
