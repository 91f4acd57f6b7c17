"""Synthetic data is deterministic and shaped as documented."""

from __future__ import annotations

import numpy as np

from scoring.synthetic import demo_spec, random_items, random_model, zipf_candidates


def test_generators_are_deterministic() -> None:
    spec = demo_spec()
    assert random_items(50, spec, seed=1) == random_items(50, spec, seed=1)
    a = random_model("m", "1", spec, hash_bits=10, seed=2)
    b = random_model("m", "1", spec, hash_bits=10, seed=2)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_demo_spec_shape() -> None:
    spec = demo_spec()
    assert len(spec.job_crosses()) == 8
    assert len(spec.item_crosses()) == 3
    assert [d.name for d in spec.dense] == ["user.age", "user.activity", "item.price", "item.ctr"]


def test_items_have_missing_values() -> None:
    raw = random_items(2000, demo_spec(), seed=3)
    assert len(set(raw.ids)) == 2000
    assert any(v is None for v in raw.categorical["brand"])
    assert any(v is None for v in raw.dense["price"])


def test_zipf_candidates_are_unique_per_job_and_skewed() -> None:
    ids = np.arange(1000, 6000, dtype=np.int64)
    cands, splits = zipf_candidates(np.random.default_rng(4), ids, n_jobs=30, mean_candidates=100)
    sizes = np.diff(splits)
    assert splits[0] == 0
    assert splits[-1] == cands.size
    assert ((sizes >= 50) & (sizes <= 150)).all()
    for j in range(30):
        job = cands[splits[j] : splits[j + 1]]
        assert np.unique(job).size == job.size
    counts = np.unique(cands, return_counts=True)[1]
    assert counts.max() >= 25  # popular items recur across most jobs
