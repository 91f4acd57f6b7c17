"""The previous kernel, kept callable as the in-run baseline of ``bench.kernel``.

``BaselineScorer`` scores every user/context x item cross per candidate: it gathers the item's
row of cross halves, XORs it with the job's halves and gathers one weight per cross from the full
weight table (24 random gathers per prediction on the heavy workload). ``scoring.kernel.Scorer``
scores the same crosses through per-job value grids. Both equal ``scoring.reference``; this one is
not used to serve.

Invariants: as ``scoring.kernel.Scorer`` (it inherits ranking, the model cache and the job terms);
its cached ``ItemState`` encodes no field, so ``right`` holds every job cross.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scoring.batch import ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.item_cache import ItemState, partial_logits
from scoring.kernel import ModelState, Scorer, row_sums
from scoring.model import LRModel
from scoring.terms import JobTerms, item_terms, job_terms, unknown_item_terms
from scoring.value_grid import unencoded


class BaselineScorer(Scorer):
    """Scores micro-batches with one weight gather per candidate and user/context x item cross."""

    def __init__(self, chunk_jobs: int = 16, max_models: int = 2, max_item_tables: int = 4) -> None:
        super().__init__(chunk_jobs, max_models, max_item_tables)
        self._idx32 = np.empty((0, 0), dtype=np.uint32)
        self._gathered = np.empty((0, 0), dtype=np.float32)

    def logits(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> NDArray[np.float32]:
        """Logit of every candidate, aligned with ``batch.candidates``."""
        state = self.model_state(model)
        cached = self.item_state(model, items)
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

    def item_state(self, model: LRModel, items: ItemTable) -> ItemState:
        """Item partial logits and every cross's item half, cached like ``Scorer.item_state``."""
        key = (model.name, model.version, items.token)
        cached = self.items.get(key, model.weights)
        if cached is None:
            state = self.model_state(model)
            terms = item_terms(model.spec, model.hash_bits, items)
            encoded = unencoded(len(items) + 1, terms.right.shape[1])
            partial = partial_logits(terms, state.table, state.item_dense)
            cached = ItemState.of(partial, terms.right, encoded)
            self.items.put(key, model.weights, cached)
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
