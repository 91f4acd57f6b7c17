"""Dictionary-encoded item fields, per-value cross rows and batch reads: exact against the hash."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from scoring import value_grid
from scoring.features import ItemTable
from scoring.model import LRModel
from scoring.spec import FeatureSpec
from scoring.terms import MISSING, MISSING_RIGHT, item_values, right_index, weight_table
from scoring.value_grid import CrossRows, EncodedItems, encode_items, plan_reads


def test_codes_decode_to_the_item_values(spec: FeatureSpec, items: ItemTable) -> None:
    values = item_values(spec, items)
    enc = encode_items(spec, 16, values)
    crossed = [b for _, b in spec.job_crosses() if b != "item.id"]
    names = list(dict.fromkeys(crossed))
    assert [f.name for f in enc.fields] == names
    for f, name in enumerate(names):
        codes = enc.codes[f]
        assert codes.dtype == np.uint16
        assert codes.shape == (len(items) + 1,)
        assert codes[-1] == 0  # the unknown item: every value missing
        vocab = np.unique(values[name])
        np.testing.assert_array_equal(vocab[codes], values[name])
        assert vocab[0] == 0
        field = enc.fields[f]
        assert [spec.job_crosses()[c][1] for c in field.columns] == [name] * field.columns.size
        np.testing.assert_array_equal(field.right, right_index(name, vocab, 16))
        assert field.right[0] == MISSING_RIGHT
        assert all(cross.right is field.right for cross in field.crosses)
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
    assert [f.name for f in enc.fields] == small
    assert enc.direct.size == len(spec.job_crosses()) - sum(f.columns.size for f in enc.fields)
    assert enc.direct.size > 2


def test_cross_rows_hold_the_weights_of_every_value(model: LRModel) -> None:
    table = weight_table(model.weights)
    right = np.array([MISSING_RIGHT, 5, 9_000, 65_535], dtype=np.uint32)
    rows = CrossRows(right)
    left = np.array([7, 300, 7, MISSING, 300], dtype=np.uint32)
    got = rows.rows_for(table, left)
    assert got is not None
    assert got[0] == got[2] != got[1]
    for j, half in enumerate(left.tolist()):
        want = np.take(table, np.uint32(half) ^ right, mode="clip")
        np.testing.assert_array_equal(rows.weights[got[j]], want)
    assert (rows.weights[got[3]] == 0).all()  # a missing job-side value adds nothing
    assert (rows.weights[:, 0] == 0).all()  # nor does a missing item value
    again = rows.rows_for(table, np.array([300, 7], dtype=np.uint32))
    assert rows.weights.shape[0] == 3  # nothing recomputed
    assert again is not None
    assert again.tolist() == [got[1], got[0]]


def test_a_high_cardinality_job_field_falls_back_to_hashing(
    model: LRModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(value_grid, "MAX_LEFT_VALUES", 5)
    table = weight_table(model.weights)
    rows = CrossRows(np.arange(1, 40, dtype=np.uint32))
    assert rows.max_rows == 5
    assert rows.rows_for(table, np.array([10, 20, 30], dtype=np.uint32)) is not None
    assert rows.rows_for(table, np.array([10, 40, 50], dtype=np.uint32)) is not None
    assert rows.rows_for(table, np.array([60, 10], dtype=np.uint32)) is None  # a sixth value
    assert rows.hashed
    assert rows.weights.size == 0  # the rows are released
    assert rows.rows_for(table, np.array([10], dtype=np.uint32)) is None  # for good


def test_the_row_bound_also_caps_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(value_grid, "ROW_CAPACITY", 100)
    assert CrossRows(np.arange(40, dtype=np.uint32)).max_rows == 2


def read_by_hand(
    enc: EncodedItems,
    table: NDArray[np.float32],
    left: NDArray[np.uint32],
    codes: list[NDArray[np.intp]],
    job: NDArray[np.intp],
) -> NDArray[np.float64]:
    """Every encoded cross of every candidate straight from the weight table (float64 sum)."""
    want = np.zeros(job.size)
    for f, field in enumerate(enc.fields):
        for column in field.columns.tolist():
            idx = left[job, column] ^ field.right[codes[f]]
            want += np.take(table, idx, mode="clip")
    return want


@pytest.mark.parametrize("read_cost", [0, 10**6])
def test_batch_reads_equal_the_table_weights(
    spec: FeatureSpec,
    items: ItemTable,
    model: LRModel,
    read_cost: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether a field is read from a grid, from cross rows or hashed, a candidate adds the same
    weights as the per-candidate hash path."""
    monkeypatch.setattr(value_grid, "GRID_READ_COST", read_cost)
    rng = np.random.default_rng(read_cost)
    table = weight_table(model.weights)
    enc = encode_items(spec, 16, item_values(spec, items))
    enc.fields[0].crosses[0].hashed = True  # one cross already past its bound
    n_jobs = 6
    left = rng.integers(0, 1 << 16, (n_jobs, len(spec.job_crosses()))).astype(np.uint32)
    left[2, :] = MISSING
    job = np.sort(rng.integers(0, n_jobs, 40)).astype(np.intp)
    codes = [rng.integers(0, f.vocab, job.size).astype(np.intp) for f in enc.fields]
    reads = plan_reads(enc, table, left, job.size)
    assert reads.bases.shape == (len(reads.sources), n_jobs)
    assert reads.hashed_columns.tolist() == [enc.fields[0].columns[0]]
    got = np.zeros(job.size)
    for source, f, bases in zip(reads.sources, reads.fields, reads.bases, strict=True):
        got += source[bases[job] + codes[f]]
    for f, column in zip(reads.hashed_fields, reads.hashed_columns.tolist(), strict=True):
        got += np.take(table, left[job, column] ^ enc.fields[f].right[codes[f]], mode="clip")
    np.testing.assert_allclose(got, read_by_hand(enc, table, left, codes, job), atol=1e-5)
    gridded = len(reads.sources) < sum(len(f.crosses) for f in enc.fields) - 1
    assert gridded == (read_cost > 0)
