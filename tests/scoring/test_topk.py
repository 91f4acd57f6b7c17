"""Batched top-k: selection, ordering, exact ties across the partition boundary."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from scoring import topk
from scoring.kernel_baseline import baseline_top_k
from scoring.topk import select_top_k


def splits_of(lengths: list[int]) -> NDArray[np.int64]:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def brute(
    logits: NDArray[np.float32], splits: NDArray[np.int64], top_k: NDArray[np.int32]
) -> list[list[int]]:
    rows = []
    for j in range(top_k.size):
        a, b = int(splits[j]), int(splits[j + 1])
        rows.append(sorted(range(a, b), key=lambda i: (-float(logits[i]), i))[: int(top_k[j])])
    return rows


def test_matches_brute_force_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 40, size=60).tolist()
    splits = splits_of(lengths)
    logits = rng.integers(-3, 3, size=int(splits[-1])).astype(np.float32)  # heavy ties
    top_k = rng.integers(0, 45, size=60).astype(np.int32)
    got = select_top_k(logits, splits, top_k)
    want = brute(logits, splits, top_k)
    for j, positions in enumerate(want):
        k = int(got.counts[j])
        assert k == len(positions)
        assert got.positions[j, :k].tolist() == positions
        np.testing.assert_array_equal(got.logits[j, :k], logits[positions])
        assert (got.positions[j, k:] == -1).all()
        assert np.isnan(got.logits[j, k:]).all()


def test_negative_zero_ties_with_zero_by_position() -> None:
    logits = np.array([-0.0, 0.0, 1.0, -0.0], dtype=np.float32)
    got = select_top_k(logits, splits_of([4]), np.array([3], dtype=np.int32))
    assert got.positions[0].tolist() == [2, 0, 1]


def test_empty_batch() -> None:
    got = select_top_k(np.empty(0, np.float32), splits_of([]), np.empty(0, np.int32))
    assert got.positions.shape == (0, 0)
    assert got.counts.size == 0


def check_against_brute(
    logits: NDArray[np.float32], splits: NDArray[np.int64], top_k: NDArray[np.int32]
) -> None:
    got = select_top_k(logits, splits, top_k)
    for j, positions in enumerate(brute(logits, splits, top_k)):
        k = int(got.counts[j])
        assert k == len(positions)
        assert got.positions[j, :k].tolist() == positions
        assert (got.positions[j, k:] == -1).all()


@pytest.mark.parametrize("packed_bits", [63, 20])
def test_ties_duplicates_and_short_jobs_with_both_sort_paths(
    packed_bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 bits cannot hold (job, key, position): the lexsort path must rank the same."""
    monkeypatch.setattr(topk, "_PACKED_BITS", packed_bits)
    rng = np.random.default_rng(packed_bits)
    lengths = rng.integers(0, 300, size=40).tolist()
    lengths[3] = 0
    splits = splits_of(lengths)
    logits = rng.standard_normal(int(splits[-1])).astype(np.float32)
    logits[::7] = logits[1::7][: logits[::7].size]  # exact ties between neighbours
    logits[5::11] = np.float32(-0.0)
    logits[6::11] = np.float32(0.0)
    top_k = rng.integers(0, 60, size=40).astype(np.int32)
    top_k[:5] = 1000  # more than the job holds: all of them
    check_against_brute(logits, splits, top_k)


def test_every_candidate_selected_orders_zero_signs_by_position() -> None:
    logits = np.array([-0.0, 0.0, 1.0], dtype=np.float32)
    got = select_top_k(logits, splits_of([3]), np.array([3], dtype=np.int32))
    assert got.positions[0].tolist() == [2, 0, 1]


def test_same_selection_as_the_previous_top_k_on_a_heavy_sized_batch() -> None:
    rng = np.random.default_rng(5)
    splits = splits_of(rng.integers(350, 1051, size=512).tolist())
    logits = (rng.standard_normal(int(splits[-1])) * 4).astype(np.float32)
    top_k = np.full(512, 50, dtype=np.int32)
    got = select_top_k(logits, splits, top_k)
    want = baseline_top_k(logits, splits, top_k)
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_array_equal(got.logits, want.logits)
    np.testing.assert_array_equal(got.counts, want.counts)
