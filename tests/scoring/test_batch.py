"""Batch validation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from scoring.errors import InputError
from tests.scoring.conftest import batch_of


def test_counts() -> None:
    assert batch_of([[1, 2], [], [3]], top_k=[1, 1, 1]).counts().tolist() == [2, 0, 1]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("row_splits", np.array([0, 3, 2], np.int64), "row_splits must rise"),
        ("row_splits", np.array([1, 2, 3], np.int64), "row_splits must rise"),
        ("top_k", np.array([1, -1], np.int32), "top_k must be >= 0"),
        ("top_k", np.array([1, 1], np.int64), "top_k must be a 1-D int32"),
        ("contexts", [{}], "2 jobs need 2 contexts"),
    ],
)
def test_inconsistent_batch_is_rejected(field: str, value: object, message: str) -> None:
    batch = batch_of([[1, 2], [3]], top_k=[1, 1])
    with pytest.raises(InputError, match=message):
        replace(batch, **{field: value})  # type: ignore[arg-type]
