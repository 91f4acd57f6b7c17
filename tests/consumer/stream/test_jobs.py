"""Vectorized validation and selection of decoded jobs."""

from __future__ import annotations

import numpy as np

from consumer.config import LimitsConfig
from consumer.stream.jobs import ragged_take, take_jobs, validate
from schemas.records import JobColumns


def make_jobs(
    cands: list[list[int]], top_k: list[int] | None = None, users: list[int] | None = None
) -> JobColumns:
    n = len(cands)
    splits = np.zeros(n + 1, np.int64)
    np.cumsum([len(c) for c in cands], out=splits[1:])
    return JobColumns(
        request_ids=[f"r{i}" for i in range(n)],
        user_ids=np.array(users or list(range(n)), np.int64),
        models=["m"] * n,
        created_at_ms=np.arange(n, dtype=np.int64),
        contexts=[{"i": str(i)} for i in range(n)],
        candidates=np.array([x for c in cands for x in c], np.int64),
        row_splits=splits,
        top_k=np.array(top_k or [50] * n, np.int32),
    )


def test_ragged_take_selects_and_reorders_rows() -> None:
    values = np.array([1, 2, 3, 4, 5, 6], np.int64)
    splits = np.array([0, 2, 2, 6], np.int64)
    out, out_splits = ragged_take(values, splits, np.array([2, 0, 1], np.int64))
    assert out.tolist() == [3, 4, 5, 6, 1, 2]
    assert out_splits.tolist() == [0, 4, 6, 6]


def test_take_jobs_keeps_columns_aligned() -> None:
    jobs = make_jobs([[1, 2], [3], [4, 5, 6]])
    sub = take_jobs(jobs, np.array([2, 0], np.int64))
    assert sub.request_ids == ["r2", "r0"]
    assert sub.user_ids.tolist() == [2, 0]
    assert sub.contexts == [{"i": "2"}, {"i": "0"}]
    assert sub.candidates_of(0).tolist() == [4, 5, 6]
    assert sub.candidates_of(1).tolist() == [1, 2]


def test_validate_reports_each_invalid_job_once_with_its_first_reason() -> None:
    jobs = make_jobs(
        [[1, 2], [], [3, -4], list(range(1, 12)), [7], [8], [9]],
        top_k=[5, 5, 5, 5, 0, 2000, 5],
        users=[1, 2, 3, 4, 5, 6, -7],
    )
    valid, invalid = validate(jobs, LimitsConfig(max_candidates=10, max_top_k=1000))
    assert valid.tolist() == [0]
    assert [(i.position, i.reason) for i in invalid] == [
        (1, "empty candidate list"),
        (2, "negative candidate id"),
        (3, "more than 10 candidates"),
        (4, "top_k below 1"),
        (5, "top_k above 1000"),
        (6, "negative user_id"),
    ]


def test_validate_all_valid() -> None:
    jobs = make_jobs([[1], [2, 3]])
    valid, invalid = validate(jobs, LimitsConfig())
    assert valid.tolist() == [0, 1]
    assert invalid == []


def test_taking_every_job_in_order_returns_the_batch_itself() -> None:
    jobs = make_jobs([[1, 2], [3]])
    assert take_jobs(jobs, np.arange(2, dtype=np.int64)) is jobs
    reordered = take_jobs(jobs, np.array([1, 0], dtype=np.int64))
    assert reordered.request_ids == ["r1", "r0"]
    assert reordered.candidates.tolist() == [3, 1, 2]
    assert take_jobs(jobs, np.array([0], dtype=np.int64)).candidates.tolist() == [1, 2]
