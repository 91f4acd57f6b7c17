"""A micro-batch of ranking jobs and its ranked result.

A batch holds ``n`` jobs; job ``j`` owns ``candidates[row_splits[j]:row_splits[j + 1]]`` (ragged
rows in one flat array, so the kernel never loops over candidates in Python) and wants its
``top_k[j]`` best candidates.

Invariants checked at construction (``InputError`` otherwise): dtypes as annotated, ``row_splits``
starts at 0, is non-decreasing and ends at ``len(candidates)``, one context and one ``top_k`` per
job, ``top_k >= 0``. A ``RankedBatch`` row ``j`` is valid in its first ``counts[j]`` entries,
``counts[j] = min(top_k[j], number of candidates of job j)``; entries past it hold item id -1 and
score NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoring.errors import InputError


def _check(array: NDArray[Any], dtype: type[Any], ndim: int, what: str) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != ndim:
        raise InputError(f"{what} must be a {ndim}-D {np.dtype(dtype).name} array")


@dataclass(frozen=True, slots=True)
class ScoringBatch:
    """Jobs of one micro-batch with their candidates concatenated."""

    user_ids: NDArray[np.int64]
    contexts: Sequence[Mapping[str, str]]
    candidates: NDArray[np.int64]
    row_splits: NDArray[np.int64]
    top_k: NDArray[np.int32]

    def __post_init__(self) -> None:
        _check(self.user_ids, np.int64, 1, "user_ids")
        _check(self.candidates, np.int64, 1, "candidates")
        _check(self.row_splits, np.int64, 1, "row_splits")
        _check(self.top_k, np.int32, 1, "top_k")
        n = self.user_ids.size
        if len(self.contexts) != n or self.top_k.size != n or self.row_splits.size != n + 1:
            raise InputError(f"{n} jobs need {n} contexts, {n} top_k and {n + 1} row_splits")
        splits = self.row_splits
        if splits[0] != 0 or splits[-1] != self.candidates.size or np.any(splits[1:] < splits[:-1]):
            raise InputError("row_splits must rise from 0 to len(candidates)")
        if np.any(self.top_k < 0):
            raise InputError("top_k must be >= 0")

    @property
    def n_jobs(self) -> int:
        return int(self.user_ids.size)

    def counts(self) -> NDArray[np.int64]:
        """Number of candidates of each job."""
        return np.diff(self.row_splits)


@dataclass(frozen=True, slots=True)
class RankedBatch:
    """Top-k item ids and probabilities per job, best first."""

    item_ids: NDArray[np.int64]
    scores: NDArray[np.float32]
    counts: NDArray[np.int32]

    def row(self, j: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The valid ``(item_ids, scores)`` of job ``j``."""
        k = int(self.counts[j])
        return self.item_ids[j, :k], self.scores[j, :k]
