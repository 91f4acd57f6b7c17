"""User/context x item crosses scored from per-value weight rows instead of per-candidate hashes.

For a cross ``(A, B)`` whose first field ``A`` is per job and whose second ``B`` is an item field,
the weight is ``w[left_A(job) ^ right_B(value of B)]``: once the job fixes ``left_A``, it depends
on ``B``'s value alone. An item table's ``B`` column is dictionary-encoded once per (model, item
table): each item holds a small code and ``right_B`` is computed once per vocabulary entry. Each
cross then keeps, per job-side left half it has met, a row of its weight for every value of ``B``
(``CrossRows``): job-side fields have few values, so after the first batches no row is computed
and no candidate gathers from the 16 MiB weight table for these crosses.

Per batch (``plan_reads``), each encoded field is read by a candidate either through one cell of
a per-job grid (the sum of the field's cross rows, built when its vocabulary is small next to the
candidates it serves) or through one cell per cross from the rows themselves. A cross whose job
side has shown more than ``max_rows`` distinct values (a high-cardinality user or context field)
stops keeping rows and falls back to the hashed path for good: per candidate its item half is
``right_B[code]`` and its weight one gather from the weight table, as without encoding.

Code 0 of every field is "missing" (value hash 0): its right half carries the ``MISSING_RIGHT``
flag, so its weights read the table's trailing 0.0 as on the per-candidate path; the unknown-item
row of ``codes`` is all 0. ``item.id`` and fields with more than ``MAX_VOCAB`` distinct values stay
on the per-candidate path (``direct``). The hash spec is untouched: same weights, same sums. Within
a batch every candidate is read the same way, so duplicates tie exactly.
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
ROW_CAPACITY: Final = 1 << 21  # floats of weight rows one cross keeps (8 MiB)
MAX_LEFT_VALUES: Final = 4096  # distinct job-side values one cross keeps rows for
GRID_READ_COST: Final = 4  # a cell read per candidate costs about this many grid-building adds

U32 = NDArray[np.uint32]
F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
IntP = NDArray[np.intp]


class CrossRows:
    """One cross's weights for every value of its item field, one row per job-side left half.

    Rows are computed on first sight of a left half and kept. Once more than ``max_rows`` distinct
    left halves have been seen (``min(MAX_LEFT_VALUES, ROW_CAPACITY // vocabulary)``), the rows
    are dropped and the cross is ``hashed`` from then on. Left halves flagged missing give rows of
    0.0 like every other flagged index.
    """

    def __init__(self, right: U32) -> None:
        self.right = right
        self.max_rows = min(MAX_LEFT_VALUES, ROW_CAPACITY // max(right.size, 1))
        self.weights = np.empty((0, right.size), dtype=np.float32)
        self.hashed = False
        self._row_of: dict[int, int] = {}

    def rows_for(self, table: F32, left: U32) -> I64 | None:
        """The row of each job's left half in ``weights`` (computing rows not seen before), or
        None once the cross is hashed."""
        if self.hashed:
            return None
        halves, inverse = np.unique(left, return_inverse=True)
        keys = halves.tolist()
        new = [k for k in keys if k not in self._row_of]
        if new:
            if len(self._row_of) + len(new) > self.max_rows:
                self.hashed, self._row_of = True, {}
                self.weights = self.weights[:0]
                return None
            idx = np.array(new, dtype=np.uint32)[:, None] ^ self.right[None, :]
            block = np.take(table, idx, mode="clip")
            first = self.weights.shape[0]
            self.weights = np.concatenate([self.weights, block])
            self._row_of.update(zip(new, range(first, first + len(new)), strict=True))
        rows = np.array([self._row_of[k] for k in keys], dtype=np.int64)
        return rows[inverse]


@dataclass(frozen=True, slots=True)
class EncodedField:
    """One dictionary-encoded item field: the right half of each code, the columns of
    ``JobTerms.left`` crossed with it and one ``CrossRows`` per such cross."""

    name: str
    right: U32
    columns: IntP
    crosses: tuple[CrossRows, ...]

    @property
    def vocab(self) -> int:
        return int(self.right.size)


@dataclass(frozen=True, slots=True)
class EncodedItems:
    """Dictionary-encoded item fields and which job crosses go through them.

    ``codes[f]`` holds field ``f``'s code of every item row and the unknown row (uint16);
    ``direct`` lists the columns of ``JobTerms.left`` scored per candidate from item halves.
    """

    codes: tuple[NDArray[np.uint16], ...]
    fields: tuple[EncodedField, ...]
    direct: IntP

    @property
    def n_fields(self) -> int:
        return len(self.fields)


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
    fields: list[EncodedField] = []
    for name, cols in by_field.items():
        vocab, inverse = np.unique(values[name], return_inverse=True)
        if vocab.size > MAX_VOCAB:
            direct.extend(cols)
            continue
        codes.append(inverse.astype(np.uint16))  # vocab[0] == 0: the unknown row is missing
        right = right_index(name, vocab, bits)
        crosses = tuple(CrossRows(right) for _ in cols)
        fields.append(EncodedField(name, right, np.array(cols, dtype=np.intp), crosses))
    return EncodedItems(tuple(codes), tuple(fields), np.array(sorted(direct), np.intp))


@dataclass(frozen=True, slots=True)
class BatchReads:
    """How one batch reads its encoded crosses.

    Candidate ``i`` of job ``j`` adds ``sources[r][bases[r, j] + code of fields[r]]`` for every
    read ``r``, in order; each hashed cross ``k`` adds ``table[left[j, hashed_columns[k]] ^
    right of hashed_fields[k]]``.
    """

    sources: tuple[F32, ...]
    fields: tuple[int, ...]
    bases: I64
    hashed_fields: tuple[int, ...]
    hashed_columns: IntP


def plan_reads(enc: EncodedItems, table: F32, left: U32, n_candidates: int) -> BatchReads:
    """The reads of one batch with job-side left halves ``left`` (jobs x crosses)."""
    n_jobs = left.shape[0]
    sources: list[F32] = []
    fields: list[int] = []
    bases: list[I64] = []
    hashed: list[tuple[int, int]] = []
    for f, field in enumerate(enc.fields):
        kept: list[tuple[F32, I64]] = []  # (weight rows, row of each job)
        for cross, column in zip(field.crosses, field.columns.tolist(), strict=True):
            rows = cross.rows_for(table, left[:, column])
            if rows is None:
                hashed.append((f, column))
            else:
                kept.append((cross.weights, rows))
        if _grid_pays(len(kept), field.vocab, n_jobs, n_candidates):
            kept = [(_grid(kept), np.arange(n_jobs, dtype=np.int64))]
        for weights, rows in kept:
            sources.append(weights.ravel())
            fields.append(f)
            bases.append(rows * field.vocab)
    return BatchReads(
        tuple(sources),
        tuple(fields),
        np.stack(bases) if bases else np.empty((0, n_jobs), dtype=np.int64),
        tuple(f for f, _ in hashed),
        np.array([c for _, c in hashed], dtype=np.intp),
    )


def _grid_pays(crosses: int, vocab: int, n_jobs: int, n_candidates: int) -> bool:
    """A grid costs ``crosses * vocab`` adds per job and saves ``crosses - 1`` reads per
    candidate."""
    return crosses > 1 and crosses * vocab * n_jobs <= GRID_READ_COST * (crosses - 1) * n_candidates


def _grid(kept: list[tuple[F32, I64]]) -> F32:
    """One field's grid: row ``j`` is the sum, in cross order, of the field's cross rows of job
    ``j``."""
    (first, rows), rest = kept[0], kept[1:]
    grid = np.take(first, rows, axis=0)
    part = np.empty_like(grid)
    for weights, k_rows in rest:
        np.take(weights, k_rows, axis=0, out=part)
        grid += part
    return grid
