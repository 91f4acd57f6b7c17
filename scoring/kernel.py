"""The vectorized logistic-regression kernel: logits, probabilities and top-k for a micro-batch.

Per batch the work splits three ways:

- per item and model version (cached, see ``item_cache``): item-only terms summed into a partial
  logit, the dictionary codes of the item fields crossed with user/context fields (see
  ``value_grid``), and the item halves of the remaining crosses (those with ``item.id``);
- per job (Python-level work over jobs is fine): bias, user and context singles, user dense
  features, and the job halves of the crosses;
- per chunk of jobs: for every encoded item field, a grid ``(job, value code) -> sum of that
  field's cross weights`` over the values the chunk's candidates hold;
- per candidate (numpy only, never a Python loop over candidates): map the id to an item row,
  read one grid cell per encoded field, gather the weights of the remaining crosses (item half
  XOR job half), add the partial and the job scalar.

Candidates are processed in chunks of ``chunk_jobs`` jobs so grids and buffers (reused across
chunks and batches) stay in cache. Candidates absent from the item table are rescored afterwards
through the same term code with only ``item.id`` known.

Invariants: ``Scorer.logits`` equals ``reference.reference_logits`` up to float32 rounding; outputs
align with ``batch.candidates``; a candidate's logit does not depend on the chunking or on its
position, so duplicates tie exactly; the scorer holds caches and scratch buffers, so one
``Scorer`` must not be used by two threads at once. ``kernel_baseline`` keeps the previous
per-candidate cross path for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scoring.batch import RankedBatch, ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.item_cache import ItemState, LruCache, partial_logits
from scoring.model import LRModel
from scoring.spec import USER
from scoring.terms import (
    JobTerms,
    item_terms,
    item_values,
    job_terms,
    unknown_item_terms,
    weight_table,
)
from scoring.topk import select_top_k
from scoring.value_grid import EncodedItems, encode_items, field_sums


@dataclass(frozen=True, slots=True)
class ModelState:
    """Per-model derived data: the extended weight table and dense weights split by group."""

    table: NDArray[np.float32]
    user_dense: NDArray[np.float64]
    item_dense: NDArray[np.float64]

    @staticmethod
    def of(model: LRModel) -> ModelState:
        groups = np.array([d.group == USER for d in model.spec.dense], dtype=bool)
        dense = model.dense_weights.astype(np.float64)
        return ModelState(weight_table(model.weights), dense[groups], dense[~groups])


def row_sums(gathered: NDArray[np.float32], out: NDArray[np.float32]) -> None:
    """``out[i] = sum(gathered[i])``, adding columns left to right.

    A BLAS product with a ones vector is ~1 ms per 350k rows faster, but it sums tail rows in a
    different order, so a duplicate candidate could score a rounding step away from its twin and
    break exact ties; column adds give every row the same operations wherever it sits.
    """
    width = gathered.shape[1]
    if width < 2:
        out[:] = gathered[:, 0] if width else 0.0
        return
    np.add(gathered[:, 0], gathered[:, 1], out=out)
    for k in range(2, width):
        np.add(out, gathered[:, k], out=out)


def sigmoid(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    """Logistic function in float32 (exp overflow for very negative logits correctly gives 0)."""
    with np.errstate(over="ignore"):
        out = np.exp(-logits)
    out += np.float32(1.0)
    return np.reciprocal(out, out=out)


class Scorer:
    """Scores micro-batches; holds per-model caches (bounded LRU) and reusable scratch buffers."""

    def __init__(self, chunk_jobs: int = 16, max_models: int = 2, max_item_tables: int = 4) -> None:
        if chunk_jobs < 1:
            raise ValueError("chunk_jobs must be >= 1")
        self.chunk_jobs = chunk_jobs
        self.models: LruCache[tuple[str, str], ModelState] = LruCache(max_models)
        self.items: LruCache[tuple[str, str, int], ItemState] = LruCache(max_item_tables)

    def rank(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> RankedBatch:
        """The ``top_k`` best candidates of each job with their probabilities, best first."""
        best = select_top_k(self.logits(model, batch, users, items), batch.row_splits, batch.top_k)
        valid = best.positions >= 0
        item_ids = np.where(valid, batch.candidates[np.maximum(best.positions, 0)], -1)
        return RankedBatch(item_ids=item_ids, scores=sigmoid(best.logits), counts=best.counts)

    def predict(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> NDArray[np.float32]:
        """Probability of every candidate, aligned with ``batch.candidates``."""
        return sigmoid(self.logits(model, batch, users, items))

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
        self._cross_sums(state.table, cached, jobs.left, rows, batch.row_splits, out)
        out += np.repeat(scalar, batch.counts())
        unknown = np.flatnonzero(rows == items.index.unknown_row)
        if unknown.size:
            self._rescore_unknown(model, state, batch, jobs, scalar, unknown, out)
        return out

    def model_state(self, model: LRModel) -> ModelState:
        """Derived per-model data, cached under (name, version) for this exact weight array."""
        key = (model.name, model.version)
        state = self.models.get(key, model.weights)
        if state is None:
            state = ModelState.of(model)
            self.models.put(key, model.weights, state)
        return state

    def item_state(self, model: LRModel, items: ItemTable) -> ItemState:
        """Item partial logits, field codes and cross halves, cached under (name, version,
        items.token)."""
        key = (model.name, model.version, items.token)
        cached = self.items.get(key, model.weights)
        if cached is None:
            state = self.model_state(model)
            terms = item_terms(model.spec, model.hash_bits, items)
            encoded = encode_items(model.spec, model.hash_bits, item_values(model.spec, items))
            right = np.ascontiguousarray(terms.right[:, encoded.direct])
            partial = partial_logits(terms, state.table, state.item_dense)
            cached = ItemState.of(partial, right, encoded)
            self.items.put(key, model.weights, cached)
        return cached

    @staticmethod
    def _job_scalars(model: LRModel, state: ModelState, jobs: JobTerms) -> NDArray[np.float32]:
        sparse = np.take(state.table, jobs.singles, mode="clip").astype(np.float64).sum(axis=1)
        total: NDArray[np.float64] = model.bias + sparse + jobs.dense @ state.user_dense
        return total.astype(np.float32)

    def _cross_sums(
        self,
        table: NDArray[np.float32],
        cached: ItemState,
        left: NDArray[np.uint32],
        rows: NDArray[np.int64],
        row_splits: NDArray[np.int64],
        out: NDArray[np.float32],
    ) -> None:
        """``out[i]`` = the per-job cross weights of candidate ``i`` plus its item partial."""
        enc, d = cached.encoded, cached.right.shape[1]
        direct = np.ascontiguousarray(left[:, enc.direct])
        job_rows = [
            [r.rows_for(table, left[:, c]) for r, c in zip(rows_f, cols, strict=True)]
            for rows_f, cols in zip(enc.rows, enc.columns, strict=True)
        ]
        splits = row_splits.tolist()
        counts = np.diff(row_splits)
        for j0 in range(0, left.shape[0], self.chunk_jobs):
            j1 = min(j0 + self.chunk_jobs, left.shape[0])
            start, stop = splits[j0], splits[j1]
            if stop == start:
                continue
            chunk_out = out[start:stop]
            item = np.take(cached.packed, rows[start:stop], axis=0)  # one row read per candidate
            _direct_sums(table, item[:, 1 : 1 + d], direct[j0:j1], counts[j0:j1], chunk_out)
            if enc.n_fields:
                chunk_job_rows = [[r[j0:j1] for r in f] for f in job_rows]
                _encoded_sums(enc, chunk_job_rows, item[:, 1 + d :].T, counts[j0:j1], chunk_out)
            chunk_out += item[:, 0].view(np.float32)

    def _rescore_unknown(
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


def _direct_sums(
    table: NDArray[np.float32],
    right: NDArray[np.uint32],
    left: NDArray[np.uint32],
    counts: NDArray[np.int64],
    out: NDArray[np.float32],
) -> None:
    """``out[i]`` = sum of the crosses scored per candidate: item half XOR job half, one gather
    each (a flat XOR with the job halves repeated per candidate beats a per-job broadcast)."""
    if left.shape[1] == 0:
        out[:] = 0.0
        return
    idx = np.repeat(left, counts, axis=0)
    idx ^= right
    row_sums(np.take(table, idx, mode="clip"), out)


def _encoded_sums(
    enc: EncodedItems,
    job_rows: list[list[NDArray[np.intp]]],
    codes: NDArray[np.uint32],
    counts: NDArray[np.int64],
    out: NDArray[np.float32],
) -> None:
    """Add each encoded field's summed cross weights to ``out`` (one chunk of jobs);
    ``codes`` is ``(fields, candidates)``."""
    job = np.repeat(np.arange(counts.size, dtype=np.intp), counts)
    part = np.empty(out.size, dtype=np.float32)
    for f in range(enc.n_fields):
        field_sums(enc.rows[f], job_rows[f], codes[f], job, part)
        out += part
