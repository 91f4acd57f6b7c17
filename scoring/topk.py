"""Batched top-k over ragged rows of logits with deterministic tie-breaking.

All jobs are laid out in one padded ``(n, max_candidates)`` float32 matrix (padding = -inf), one
``np.argpartition`` selects the ``kmax`` best per row, and a sort of unique int64 keys (an
order-preserving bit transform of the float32 score above ``2**32 - 1 - position``) orders them by
(score descending, candidate position ascending). ``argpartition`` may pick arbitrarily among
candidates tied with the k-th best score; rows where such a tie straddles the boundary are detected
(more than ``kmax`` entries >= the k-th score) and re-selected exactly. Ties come from duplicate
candidates or items whose terms collide, so the fix-up touches few rows.

Invariants: ``counts[j] = min(top_k[j], candidates of job j)``; row ``j`` lists the best candidates
best first, equal scores in order of position; positions past ``counts[j]`` are -1 and their logits
NaN; no Python loop over candidates (a loop over jobs copies each job's row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class TopK:
    """Selected candidates per job: flat positions into the candidate array, logits, counts."""

    positions: NDArray[np.int64]
    logits: NDArray[np.float32]
    counts: NDArray[np.int32]


def select_top_k(
    logits: NDArray[np.float32], row_splits: NDArray[np.int64], top_k: NDArray[np.int32]
) -> TopK:
    """The ``min(top_k[j], len_j)`` best candidates of every job, best first."""
    n = row_splits.size - 1
    lengths = np.diff(row_splits)
    counts = np.minimum(top_k, lengths).astype(np.int32)
    width = int(lengths.max()) if n else 0
    kmax = int(counts.max()) if n else 0
    if kmax == 0:
        return TopK(np.full((n, 0), -1, np.int64), np.empty((n, 0), np.float32), counts)
    padded = _pad(logits, row_splits.tolist(), width)
    if kmax < width:
        cols = np.argpartition(padded, width - kmax, axis=1)[:, width - kmax :]
    else:
        cols = np.broadcast_to(np.arange(width), (n, width))
    values = np.take_along_axis(padded, cols, axis=1)
    order = np.argsort(_sort_keys(values, cols), axis=1)[:, ::-1]
    cols = np.take_along_axis(cols, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    _fix_boundary_ties(padded, cols, values)
    return _unpack(cols, values, row_splits, counts)


def _sort_keys(values: NDArray[np.float32], cols: NDArray[np.int64]) -> NDArray[np.int64]:
    """Unique int64 keys: high half orders the float32 values, low half prefers earlier columns."""
    bits = values.view(np.int32)
    ordered = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
    keys = ordered.astype(np.int64) << 32
    keys |= 0xFFFFFFFF - cols
    return keys


def _pad(logits: NDArray[np.float32], splits: list[int], width: int) -> NDArray[np.float32]:
    padded = np.full((len(splits) - 1, width), -np.inf, dtype=np.float32)
    for j in range(len(splits) - 1):
        a, b = splits[j], splits[j + 1]
        padded[j, : b - a] = logits[a:b]
    return padded


def _fix_boundary_ties(
    padded: NDArray[np.float32], cols: NDArray[np.int64], values: NDArray[np.float32]
) -> None:
    """Re-select rows where candidates tied with the k-th score were left out arbitrarily."""
    kmax = cols.shape[1]
    kth = values[:, -1]
    at_least = np.count_nonzero(padded >= kth[:, None], axis=1)
    for j in np.flatnonzero((at_least > kmax) & np.isfinite(kth)).tolist():
        exact = np.lexsort((np.arange(padded.shape[1]), -padded[j]))[:kmax]
        cols[j] = exact
        values[j] = padded[j, exact]


def _unpack(
    cols: NDArray[np.int64],
    values: NDArray[np.float32],
    row_splits: NDArray[np.int64],
    counts: NDArray[np.int32],
) -> TopK:
    valid = np.arange(cols.shape[1]) < counts[:, None]
    positions = np.where(valid, row_splits[:-1, None] + cols, -1)
    values[~valid] = np.nan
    return TopK(positions, values, counts)
