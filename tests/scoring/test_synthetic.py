"""Synthetic data is deterministic and shaped as documented."""

from __future__ import annotations

import numpy as np

from scoring.features import ItemTable
from scoring.synthetic import (
    HEAVY_ITEM_VOCAB,
    HEAVY_USER_VOCAB,
    demo_spec,
    heavy_items,
    heavy_spec,
    heavy_users,
    random_items,
    random_model,
    zipf_candidates,
)


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


def test_heavy_spec_shape() -> None:
    spec = heavy_spec()
    crosses = spec.job_crosses()
    assert sum(a.startswith("user.") for a, _ in crosses) == 12
    assert sum(a.startswith("context.") for a, _ in crosses) == 12
    assert spec.item_crosses() == ()
    assert len(spec.item_fields) == 5
    assert len(spec.user_fields) == 8
    assert spec.context_fields == ("country", "device", "hour")
    assert [d.group for d in spec.dense] == ["item"] * 16


def test_heavy_items_equal_the_raw_string_path() -> None:
    """The code-based fast path equals ``ItemTable.from_raw`` of the strings it stands for."""
    spec = heavy_spec()
    fast = heavy_items(500, spec, seed=5)
    rng = np.random.default_rng(5)  # replay the draws as strings and floats
    ids = (rng.choice(2000, size=500, replace=False) + 1).tolist()
    strings: dict[str, list[str | None]] = {}
    for f in spec.item_fields:
        codes = rng.zipf(1.3, size=500) % HEAVY_ITEM_VOCAB[f]
        missing = rng.random(500) < 0.05
        strings[f] = [None if m else f"{f}-{c}" for c, m in zip(codes, missing, strict=True)]
    floats: dict[str, list[float | None]] = {}
    for d in spec.dense:
        values = rng.normal(d.mean, d.std, size=500).astype(np.float32)
        missing = rng.random(500) < 0.05
        floats[d.field] = [None if m else float(v) for v, m in zip(values, missing, strict=True)]
    slow = ItemTable.from_raw(sorted(ids), strings, floats)
    np.testing.assert_array_equal(fast.ids, slow.ids)
    for f in spec.item_fields:
        np.testing.assert_array_equal(fast.categorical[f], slow.categorical[f])
        assert (fast.categorical[f] == 0).any()
    for name, column in slow.dense.items():
        np.testing.assert_array_equal(fast.dense[name], column)
    assert np.isnan(fast.dense["d03"]).any()
    assert fast.token == slow.token


def test_uniform_item_fields_spread_over_their_vocabularies() -> None:
    spec = heavy_spec()
    zipf = heavy_items(20_000, spec, seed=7)
    uniform = heavy_items(20_000, spec, seed=7, uniform_fields=True)
    np.testing.assert_array_equal(zipf.ids, uniform.ids)
    for f, vocab in HEAVY_ITEM_VOCAB.items():
        _, counts = np.unique(uniform.categorical[f], return_counts=True)
        _, zipf_counts = np.unique(zipf.categorical[f], return_counts=True)
        expected = vocab * (1 - np.exp(-20_000 / vocab))  # distinct values of uniform draws
        assert counts.size - 1 > 0.95 * expected
        assert counts.max() < zipf_counts.max() / 4  # no value dominates
        assert (uniform.categorical[f] == 0).mean() < 0.07  # 5% missing


def test_heavy_users_are_deterministic_and_bounded() -> None:
    spec = heavy_spec()
    users = heavy_users(3000, spec, seed=6)
    again = heavy_users(3000, spec, seed=6)
    for f, vocab in HEAVY_USER_VOCAB.items():
        np.testing.assert_array_equal(users.categorical[f], again.categorical[f])
        present = np.unique(users.categorical[f][users.categorical[f] != 0])
        assert 1 < present.size <= vocab
    assert users.dense == {}
