"""Per-item records: layout, addressing by id or by row, and absent items marked NaN."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from scoring.item_index import ItemIndex
from scoring.item_rows import ItemRows, RowLayout

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


def test_layout_puts_wide_codes_before_narrow_ones_and_pads_to_a_power_of_two() -> None:
    heavy = RowLayout.of(1, [51, 201, 1001, 5001, 20001])  # the heavy workload's fields
    assert heavy.width == 16
    assert heavy.code_wide == (False, False, True, True, True)
    assert heavy.code_offsets == (14, 15, 8, 10, 12)
    assert RowLayout.of(2, [301, 3001, 8001]).width == 32
    assert RowLayout.of(0, []).width == 8
    assert RowLayout.of(20, []).width == 88  # past 64 bytes: a multiple of 8


def make_rows(ids: NDArray[np.int64]) -> tuple[ItemRows, NDArray[np.float32]]:
    m = ids.size
    rng = np.random.default_rng(m)
    partial = rng.standard_normal(m + 1).astype(np.float32)
    right = rng.integers(0, 1 << 22, (m + 1, 2)).astype(np.uint32)
    right[-1] = 1 << 31
    codes = [rng.integers(1, v, m + 1).astype(np.uint16) for v in (40, 3000)]
    for c in codes:
        c[-1] = 0
    layout = RowLayout.of(2, [40, 3000])
    rows = ItemRows(layout, partial, right, codes, ids, ItemIndex(ids))
    block = rows.read(ids)
    np.testing.assert_array_equal(rows.partial(block), partial[:-1])
    np.testing.assert_array_equal(rows.right(block), right[:-1])
    np.testing.assert_array_equal(rows.code(block, 0), codes[0][:-1])
    np.testing.assert_array_equal(rows.code(block, 1), codes[1][:-1])
    assert rows.code(block, 0).dtype == np.uint8
    assert rows.code(block, 1).dtype == np.uint16
    return rows, partial


@pytest.mark.parametrize(
    ("ids", "by_id"),
    [
        (np.array([5, 6, 9, 12, 13], dtype=np.int64), True),
        (np.array([-3, 0, 7], dtype=np.int64), True),
        (np.array([1, 10**12, 2 * 10**12], dtype=np.int64), False),
        (np.array([I64_MIN, 0, I64_MAX], dtype=np.int64), False),
        (np.array([I64_MAX - 2, I64_MAX], dtype=np.int64), False),
        (np.array([(1 << 62) - 5, (1 << 62) - 2], dtype=np.int64), True),  # wrap-around probes
        (np.array([-(1 << 62) + 1, -(1 << 62) + 3], dtype=np.int64), True),
    ],
)
def test_every_id_finds_its_record_and_absent_ids_read_nan(
    ids: NDArray[np.int64], by_id: bool
) -> None:
    rows, _ = make_rows(ids)
    assert rows.by_id is by_id
    lo, hi = int(ids[0]), int(ids[-1])
    probes = [I64_MIN, I64_MIN + 1, -1, 0, 1, 4, 8, 14, lo - 1, hi + 1, I64_MAX, I64_MAX - 1]
    probes = [p for p in probes if I64_MIN <= p <= I64_MAX and p not in ids.tolist()]
    absent = np.array(probes, dtype=np.int64)
    block = rows.read(absent)
    assert np.isnan(rows.partial(block)).all()
    assert (rows.code(block, 0) == 0).all()
    assert (rows.code(block, 1) == 0).all()
    assert (rows.right(block) == 1 << 31).all()


def test_records_of_mixed_known_and_absent_candidates_keep_their_order() -> None:
    ids = np.arange(100, 200, 3, dtype=np.int64)
    rows, partial = make_rows(ids)
    candidates = np.array([103, 101, 199, 103, 5000, 100], dtype=np.int64)
    got = rows.partial(rows.read(candidates))
    np.testing.assert_array_equal(got[[0, 2, 3, 5]], partial[[1, 33, 1, 0]])
    assert np.isnan(got[[1, 4]]).all()


def test_an_empty_table_reads_only_absent_records() -> None:
    rows = ItemRows(
        RowLayout.of(0, []),
        np.zeros(1, np.float32),
        np.zeros((1, 0), np.uint32),
        [],
        np.empty(0, np.int64),
        ItemIndex(np.empty(0, np.int64)),
    )
    assert not rows.by_id
    assert np.isnan(rows.partial(rows.read(np.array([0, 7], dtype=np.int64)))).all()
