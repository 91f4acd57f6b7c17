"""The previous kernel and its top-k, kept callable as the in-run baseline of ``bench.kernel``.

``BaselineScorer`` scores every user/context x item cross per candidate: it maps each candidate id
to its item row (``ItemIndex.lookup``), gathers the item's row of cross halves, XORs it with the
job's halves and gathers one weight per cross from the full weight table (24 random gathers per
prediction on the heavy workload), then ranks with one batched ``argpartition`` over rows padded
with ``-inf`` (``baseline_top_k``, the previous ``scoring.topk``). ``scoring.kernel.Scorer`` scores
the same crosses through per-job value grids and ranks with ``scoring.topk``. Both equal
``scoring.reference``; this one is not used to serve.

Invariants: as ``scoring.kernel.Scorer`` (it shares the model cache and the job terms); its own
item cache holds ``BaselineItems``: partial logits and the right halves of every job cross.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scoring.batch import RankedBatch, ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.item_cache import LruCache, partial_logits
from scoring.kernel import ModelState, Scorer, row_sums, sigmoid
from scoring.model import LRModel
from scoring.terms import JobTerms, item_terms, job_terms, unknown_item_terms
from scoring.topk import TopK


@dataclass(frozen=True, slots=True)
class BaselineItems:
    """Per item row and a trailing unknown row: partial logit, every job cross's right half."""

    partial: NDArray[np.float32]
    right: NDArray[np.uint32]


class BaselineScorer(Scorer):
    """Scores micro-batches with one weight gather per candidate and user/context x item cross."""

    def __init__(self, chunk_jobs: int = 16, max_models: int = 2, max_item_tables: int = 4) -> None:
        super().__init__(chunk_jobs, max_models, max_item_tables)
        self.baseline_items: LruCache[tuple[str, str, int], BaselineItems] = LruCache(
            max_item_tables
        )
        self._idx32 = np.empty((0, 0), dtype=np.uint32)
        self._gathered = np.empty((0, 0), dtype=np.float32)

    def rank(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> RankedBatch:
        """The ``top_k`` best candidates of each job, ranked by the previous top-k."""
        logits = self.logits(model, batch, users, items)
        best = baseline_top_k(logits, batch.row_splits, batch.top_k)
        valid = best.positions >= 0
        item_ids = np.where(valid, batch.candidates[np.maximum(best.positions, 0)], -1)
        return RankedBatch(item_ids=item_ids, scores=sigmoid(best.logits), counts=best.counts)

    def logits(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> NDArray[np.float32]:
        """Logit of every candidate, aligned with ``batch.candidates``."""
        state = self.model_state(model)
        cached = self.baseline_item_state(model, items)
        jobs = job_terms(model.spec, model.hash_bits, users, batch.contexts)
        scalar = self._job_scalars(model, state, jobs)
        rows = items.index.lookup(batch.candidates)
        out = np.empty(batch.candidates.size, dtype=np.float32)
        self._baseline_cross_sums(state.table, cached.right, jobs.left, rows, batch.row_splits, out)
        out += np.take(cached.partial, rows)
        out += np.repeat(scalar, batch.counts())
        unknown = np.flatnonzero(rows == items.index.unknown_row)
        if unknown.size:
            self._baseline_rescore(model, state, batch, jobs, scalar, unknown, out)
        return out

    def baseline_item_state(self, model: LRModel, items: ItemTable) -> BaselineItems:
        """Item partial logits and every cross's item half, cached like ``Scorer.item_state``."""
        key = (model.name, model.version, items.token)
        cached = self.baseline_items.get(key, model.weights)
        if cached is None:
            state = self.model_state(model)
            terms = item_terms(model.spec, model.hash_bits, items)
            partial = partial_logits(terms, state.table, state.item_dense)
            cached = BaselineItems(partial, terms.right)
            self.baseline_items.put(key, model.weights, cached)
        return cached

    def _buffers(self, size: int, width: int) -> tuple[NDArray[np.uint32], NDArray[np.float32]]:
        wanted = size
        if self._idx32.shape[0] < size or self._idx32.shape[1] != width:
            size = max(size, self._idx32.shape[0])
            self._idx32 = np.empty((size, width), dtype=np.uint32)
            self._gathered = np.empty((size, width), dtype=np.float32)
        return self._idx32[:wanted], self._gathered[:wanted]

    def _baseline_cross_sums(
        self,
        table: NDArray[np.float32],
        right: NDArray[np.uint32],
        left: NDArray[np.uint32],
        rows: NDArray[np.int64],
        row_splits: NDArray[np.int64],
        out: NDArray[np.float32],
    ) -> None:
        """``out[i]`` = sum of the per-job cross weights of candidate ``i``."""
        n, width = left.shape
        if width == 0:
            out[:] = 0.0
            return
        splits = row_splits.tolist()
        counts = np.diff(row_splits)
        for j0 in range(0, n, self.chunk_jobs):
            j1 = min(j0 + self.chunk_jobs, n)
            start, stop = splits[j0], splits[j1]
            if stop == start:
                continue
            idx, gathered = self._buffers(stop - start, width)
            np.take(right, rows[start:stop], axis=0, out=idx)
            idx ^= np.repeat(left[j0:j1], counts[j0:j1], axis=0)
            np.take(table, idx, out=gathered, mode="clip")
            row_sums(gathered, out[start:stop])

    def _baseline_rescore(
        self,
        model: LRModel,
        state: ModelState,
        batch: ScoringBatch,
        jobs: JobTerms,
        scalar: NDArray[np.float32],
        unknown: NDArray[np.intp],
        out: NDArray[np.float32],
    ) -> None:
        """Recompute candidates absent from the item table: only their id is known."""
        terms = unknown_item_terms(model.spec, model.hash_bits, batch.candidates[unknown])
        job = np.searchsorted(batch.row_splits, unknown, side="right") - 1
        idx = (terms.right ^ jobs.left[job]).astype(np.int64)
        logits = np.empty(unknown.size, dtype=np.float32)
        row_sums(np.take(state.table, idx, mode="clip"), logits)
        logits += partial_logits(terms, state.table, state.item_dense)
        logits += scalar[job]
        out[unknown] = logits


def baseline_top_k(
    logits: NDArray[np.float32], row_splits: NDArray[np.int64], top_k: NDArray[np.int32]
) -> TopK:
    """The previous ``scoring.topk.select_top_k``: the ``min(top_k[j], len_j)`` best candidates of
    every job, best first, by one ``argpartition`` over rows padded with ``-inf``; rows where a
    tie straddles the k-th score are re-selected exactly."""
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
