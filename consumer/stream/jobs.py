"""Vectorized operations on a columnar batch of decoded jobs: validation and selection.

No Python loop runs over candidates: checks and selections are numpy operations over the whole
batch; loops run at most once per job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from consumer.config import LimitsConfig
from schemas.records import JobColumns


@dataclass(frozen=True, slots=True)
class Invalid:
    """A job that decoded but can never be scored."""

    position: int  # position within the JobColumns it came from
    reason: str


def ragged_take(
    values: NDArray[np.int64], row_splits: NDArray[np.int64], idx: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Select rows `idx` of a ragged array given as (values, row_splits)."""
    counts = np.diff(row_splits)[idx]
    new_splits = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(counts, out=new_splits[1:])
    if new_splits[-1] == 0:
        return values[:0], new_splits
    shift = np.repeat(row_splits[idx] - new_splits[:-1], counts)
    positions = np.arange(new_splits[-1], dtype=np.int64) + shift
    return values[positions], new_splits


def take_jobs(jobs: JobColumns, idx: NDArray[np.int64]) -> JobColumns:
    """The jobs at positions `idx`, in that order (``jobs`` itself when that is all of them in
    order: the common batch of valid jobs for one model is not copied)."""
    if idx.size == len(jobs) and bool(np.array_equal(idx, np.arange(idx.size))):
        return jobs
    candidates, splits = ragged_take(jobs.candidates, jobs.row_splits, idx)
    picks = idx.tolist()
    return JobColumns(
        request_ids=[jobs.request_ids[i] for i in picks],
        user_ids=jobs.user_ids[idx],
        models=[jobs.models[i] for i in picks],
        created_at_ms=jobs.created_at_ms[idx],
        contexts=[jobs.contexts[i] for i in picks],
        candidates=candidates,
        row_splits=splits,
        top_k=jobs.top_k[idx],
    )


def validate(jobs: JobColumns, limits: LimitsConfig) -> tuple[NDArray[np.int64], list[Invalid]]:
    """Split jobs into valid positions and the reasons the others are invalid."""
    counts = np.diff(jobs.row_splits)
    negative = np.zeros(counts.size, dtype=bool)
    nonempty = counts > 0
    if jobs.candidates.size:
        starts = jobs.row_splits[:-1][nonempty]
        negative[nonempty] = np.minimum.reduceat(jobs.candidates, starts) < 0
    rules: list[tuple[NDArray[np.bool_], str]] = [
        (counts == 0, "empty candidate list"),
        (counts > limits.max_candidates, f"more than {limits.max_candidates} candidates"),
        (negative, "negative candidate id"),
        (jobs.user_ids < 0, "negative user_id"),
        (jobs.top_k < 1, "top_k below 1"),
        (jobs.top_k > limits.max_top_k, f"top_k above {limits.max_top_k}"),
    ]
    bad = np.zeros(counts.size, dtype=bool)
    invalid: list[Invalid] = []
    for mask, reason in rules:
        fresh = mask & ~bad
        invalid.extend(Invalid(int(p), reason) for p in np.flatnonzero(fresh))
        bad |= mask
    return np.flatnonzero(~bad).astype(np.int64), sorted(invalid, key=lambda i: i.position)
