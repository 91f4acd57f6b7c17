"""Dictionary-encoded item fields and per-value cross rows: exact against the hash definition."""

from __future__ import annotations

import numpy as np
import pytest

from scoring import value_grid
from scoring.features import ItemTable
from scoring.model import LRModel
from scoring.spec import FeatureSpec
from scoring.terms import MISSING, MISSING_RIGHT, item_values, right_index, weight_table
from scoring.value_grid import CrossRows, encode_items, field_sums, unencoded


def test_codes_decode_to_the_item_values(spec: FeatureSpec, items: ItemTable) -> None:
    values = item_values(spec, items)
    enc = encode_items(spec, 16, values)
    crossed = [b for _, b in spec.job_crosses() if b != "item.id"]
    fields = list(dict.fromkeys(crossed))
    assert enc.n_fields == len(fields)
    assert enc.codes.shape == (len(items) + 1, len(fields))
    assert enc.codes.dtype == np.uint16
    assert (enc.codes[-1] == 0).all()  # the unknown item: every value missing
    for f, name in enumerate(fields):
        vocab = np.unique(values[name])
        np.testing.assert_array_equal(vocab[enc.codes[:, f]], values[name])
        assert vocab[0] == 0
        assert [spec.job_crosses()[c][1] for c in enc.columns[f]] == [name] * len(enc.columns[f])
        right = enc.rows[f][0].right
        np.testing.assert_array_equal(right, right_index(name, vocab, 16))
        assert right[0] == MISSING_RIGHT
    item_id = [c for c, (_, b) in enumerate(spec.job_crosses()) if b == "item.id"]
    assert enc.direct.tolist() == item_id


def test_large_vocabularies_stay_on_the_per_candidate_path(
    spec: FeatureSpec, items: ItemTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(value_grid, "MAX_VOCAB", 50)
    values = item_values(spec, items)
    enc = encode_items(spec, 16, values)
    small = [n for n in dict.fromkeys(b for _, b in spec.job_crosses()) if n != "item.id"]
    small = [n for n in small if np.unique(values[n]).size <= 50]
    assert enc.n_fields == len(small)
    assert enc.direct.size == len(spec.job_crosses()) - sum(c.size for c in enc.columns)
    assert enc.direct.size > 2


def test_unencoded_scores_every_cross_per_candidate() -> None:
    enc = unencoded(7, 3)
    assert enc.n_fields == 0
    assert enc.codes.shape == (7, 0)
    assert enc.direct.tolist() == [0, 1, 2]


def test_cross_rows_hold_the_weights_of_every_value(model: LRModel) -> None:
    table = weight_table(model.weights)
    right = np.array([MISSING_RIGHT, 5, 9_000, 65_535], dtype=np.uint32)
    rows = CrossRows(right)
    left = np.array([7, 300, 7, MISSING, 300], dtype=np.uint32)
    got = rows.rows_for(table, left)
    assert got[0] == got[2] != got[1]
    for j, half in enumerate(left.tolist()):
        want = np.take(table, np.uint32(half) ^ right, mode="clip")
        np.testing.assert_array_equal(rows.weights[got[j]], want)
    assert (rows.weights[got[3]] == 0).all()  # a missing job-side value adds nothing
    assert (rows.weights[:, 0] == 0).all()  # nor does a missing item value
    again = rows.rows_for(table, np.array([300, 7], dtype=np.uint32))
    assert rows.weights.shape[0] == 3  # nothing recomputed
    assert again.tolist() == [got[1], got[0]]


def test_cross_rows_past_capacity_start_over_exactly(
    model: LRModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(value_grid, "ROW_CAPACITY", 8)  # two rows of four values
    table = weight_table(model.weights)
    rows = CrossRows(np.array([1, 2, 3, 4], dtype=np.uint32))
    rows.rows_for(table, np.array([10, 20], dtype=np.uint32))
    got = rows.rows_for(table, np.array([30, 20], dtype=np.uint32))
    assert rows.weights.shape[0] == 2
    for j, half in enumerate([30, 20]):
        want = np.take(table, np.uint32(half) ^ rows.right, mode="clip")
        np.testing.assert_array_equal(rows.weights[got[j]], want)


@pytest.mark.parametrize("vocab", [3, 40])
def test_grid_and_per_cell_reads_agree_bit_for_bit(model: LRModel, vocab: int) -> None:
    """Small vocabularies go through a per-job grid, large ones cell by cell: same floats."""
    rng = np.random.default_rng(vocab)
    table = weight_table(model.weights)
    crosses = tuple(CrossRows(rng.integers(0, 1 << 16, vocab).astype(np.uint32)) for _ in range(3))
    job_rows = [r.rows_for(table, rng.integers(0, 1 << 16, 4).astype(np.uint32)) for r in crosses]
    codes = rng.integers(0, vocab, 30).astype(np.uint32)
    job = np.sort(rng.integers(0, 4, 30)).astype(np.intp)
    out = np.empty(30, dtype=np.float32)
    field_sums(crosses, job_rows, codes, job, out)
    want = np.zeros(30, dtype=np.float32)
    for r, k_rows in zip(crosses, job_rows, strict=True):
        want += r.weights[k_rows[job], codes]
    np.testing.assert_array_equal(out, want)
