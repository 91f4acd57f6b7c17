"""User/context x item crosses scored from per-value weight rows instead of per-candidate hashes.

For a cross ``(A, B)`` whose first field ``A`` is per job and whose second ``B`` is an item field,
the weight is ``w[left_A(job) ^ right_B(value of B)]``: once the job fixes ``left_A``, it depends
on ``B``'s value alone. An item table's ``B`` column is dictionary-encoded once per (model, item
table): each item holds a small code and ``right_B`` is computed once per vocabulary entry. Each
cross then keeps, per job-side left half it has met, a row of its weight for every value of ``B``
(``CrossRows``): job-side fields have few values, so after the first batches no row is computed
and no candidate gathers from the 16 MiB weight table for these crosses.

Per chunk of jobs and encoded field, a candidate reads either one cell of a per-job grid (the sum
of the field's cross rows for the job, built when the vocabulary is small next to the job's
candidates) or one cell per cross from the rows themselves (large vocabularies). Either way it
adds the field's cross weights left to right in cross order, so a score does not depend on the
chunking and duplicate candidates tie exactly.

Code 0 of every field is "missing" (value hash 0): its right half carries the ``MISSING_RIGHT``
flag, so its weights read the table's trailing 0.0 as on the per-candidate path; the unknown-item
row of ``codes`` is all 0. ``item.id`` and fields with more than ``MAX_VOCAB`` distinct values stay
on the per-candidate path (``direct``). The hash spec is untouched: same weights, same sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from scoring.spec import ITEM_ID, FeatureSpec
from scoring.terms import right_index

MAX_VOCAB: Final = 1 << 16  # codes fit uint16
GRID_VOCAB_FACTOR: Final = 2  # build a per-job grid when vocab <= this x candidates per job
ROW_CAPACITY: Final = 1 << 21  # floats of weight rows one cross keeps (8 MiB)

U32 = NDArray[np.uint32]
F32 = NDArray[np.float32]
IntP = NDArray[np.intp]


class CrossRows:
    """One cross's weights for every value of its item field, one row per job-side left half.

    Rows are computed on first sight of a left half and kept (at most ``ROW_CAPACITY`` floats;
    past it the rows are dropped and rebuilt for the batch at hand). Left halves flagged missing
    give rows of 0.0 like every other flagged index.
    """

    def __init__(self, right: U32) -> None:
        self.right = right
        self.weights = np.empty((0, right.size), dtype=np.float32)
        self._row_of: dict[int, int] = {}

    def rows_for(self, table: F32, left: U32) -> IntP:
        """The row of each job's left half in ``weights``, computing rows not seen before."""
        halves, inverse = np.unique(left, return_inverse=True)
        keys = halves.tolist()
        new = [k for k in keys if k not in self._row_of]
        if new:
            if (len(self._row_of) + len(new)) * self.right.size > ROW_CAPACITY:
                self._row_of, self.weights, new = {}, self.weights[:0], keys
            idx = np.array(new, dtype=np.uint32)[:, None] ^ self.right[None, :]
            block = np.take(table, idx, mode="clip")
            first = self.weights.shape[0]
            self.weights = np.concatenate([self.weights, block])
            self._row_of.update(zip(new, range(first, first + len(new)), strict=True))
        rows = np.array([self._row_of[k] for k in keys], dtype=np.intp)
        return rows[inverse]


@dataclass(frozen=True, slots=True)
class EncodedItems:
    """Dictionary-encoded item fields and which job crosses go through them.

    ``codes`` is ``(m + 1, F)`` uint16 (one row per item, then the unknown row); ``columns[f]``
    lists the columns of ``JobTerms.left`` crossed with field ``f`` and ``rows[f]`` their weight
    rows; ``direct`` the columns scored per candidate.
    """

    codes: NDArray[np.uint16]
    columns: tuple[IntP, ...]
    rows: tuple[tuple[CrossRows, ...], ...]
    direct: IntP

    @property
    def n_fields(self) -> int:
        return len(self.columns)


def encode_items(
    spec: FeatureSpec, bits: int, values: Mapping[str, NDArray[np.uint64]]
) -> EncodedItems:
    """Encode the item fields of ``spec``'s job crosses; ``values`` as ``terms.item_values`` gives
    them (value hashes by full name, trailing unknown row of zeros)."""
    by_field: dict[str, list[int]] = {}
    direct: list[int] = []
    for column, (_, second) in enumerate(spec.job_crosses()):
        if second == ITEM_ID:
            direct.append(column)
        else:
            by_field.setdefault(second, []).append(column)
    codes: list[NDArray[np.uint16]] = []
    columns: list[IntP] = []
    rows: list[tuple[CrossRows, ...]] = []
    for name, cols in by_field.items():
        vocab, inverse = np.unique(values[name], return_inverse=True)
        if vocab.size > MAX_VOCAB:
            direct.extend(cols)
            continue
        codes.append(inverse.astype(np.uint16))  # vocab[0] == 0: the unknown row is missing
        right = right_index(name, vocab, bits)
        columns.append(np.array(cols, dtype=np.intp))
        rows.append(tuple(CrossRows(right) for _ in cols))
    n = next(iter(values.values())).size
    stacked = np.stack(codes, axis=1) if codes else np.zeros((n, 0), dtype=np.uint16)
    return EncodedItems(
        np.ascontiguousarray(stacked),
        tuple(columns),
        tuple(rows),
        np.array(sorted(direct), np.intp),
    )


def unencoded(rows: int, n_crosses: int) -> EncodedItems:
    """No field encoded: every job cross is scored per candidate (``rows`` = items + 1)."""
    return EncodedItems(np.zeros((rows, 0), np.uint16), (), (), np.arange(n_crosses, dtype=np.intp))


def field_sums(
    crosses: tuple[CrossRows, ...],
    job_rows: list[IntP],
    codes: NDArray[np.uint32],
    job: IntP,
    out: F32,
) -> None:
    """``out[i]`` = candidate ``i``'s summed weights of one field's crosses (one chunk of jobs).

    ``job_rows[k][j]`` is the row of chunk job ``j`` in ``crosses[k].weights``; ``codes[i]`` and
    ``job[i]`` are candidate ``i``'s value code and chunk job.
    """
    n_jobs, vocab = job_rows[0].size, crosses[0].right.size
    if len(crosses) > 1 and vocab * n_jobs <= GRID_VOCAB_FACTOR * codes.size:
        grid = np.take(crosses[0].weights, job_rows[0], axis=0)
        for rows, k_rows in zip(crosses[1:], job_rows[1:], strict=True):
            grid += np.take(rows.weights, k_rows, axis=0)
        cell = job * vocab
        cell += codes
        np.take(grid, cell, out=out)
        return
    for k, (rows, k_rows) in enumerate(zip(crosses, job_rows, strict=True)):
        cell = np.take(k_rows, job)
        cell *= vocab
        cell += codes
        if k == 0:
            np.take(rows.weights, cell, out=out)
        else:
            out += np.take(rows.weights, cell)
