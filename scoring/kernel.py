"""The vectorized logistic-regression kernel: logits, probabilities and top-k for a micro-batch.

The work splits four ways:

- per item and model version (cached, see ``item_cache``): item-only terms summed into a partial
  logit, the dictionary codes of the item fields crossed with user/context fields (see
  ``value_grid``) and the item halves of the remaining crosses (those with ``item.id``), packed
  into one 8- to 64-byte record per item (``item_rows``);
- per job (Python-level work over jobs is fine): bias, user and context singles, user dense
  features, and the job halves of the crosses;
- per batch (``value_grid.plan_reads``): for each encoded field, either a grid ``(job, value
  code) -> sum of the field's cross weights`` or the per-value weight row of each of its crosses;
- per candidate (numpy only, never a Python loop over candidates): read the item's record (by id
  offset when ids are compact, so no id -> row lookup), one grid or row cell per read, and one
  table gather per remaining cross (item half XOR job half); add the partial and the job scalar.

Candidates are processed in chunks of ``chunk_jobs`` jobs so the per-candidate arrays stay in
cache. Absent items read a record whose partial logit is NaN; those candidates are confirmed
with the item index and rescored through the same term code with only ``item.id`` known.

Invariants: ``Scorer.logits`` equals ``reference.reference_logits`` up to float32 rounding; outputs
align with ``batch.candidates``; within a batch a candidate's logit depends neither on the chunking
nor on its position, so duplicates tie exactly; the scorer holds caches, so one ``Scorer`` must not
be used by two threads at once. ``kernel_baseline`` keeps the previous per-candidate cross path
and top-k for comparison.
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
from scoring.value_grid import BatchReads, encode_items, plan_reads


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
    """Scores micro-batches; holds per-model and per-item-table caches (bounded LRU), whose cross
    rows grow as new job-side values arrive."""

    def __init__(self, chunk_jobs: int = 32, max_models: int = 2, max_item_tables: int = 4) -> None:
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
        reads = plan_reads(cached.encoded, state.table, jobs.left, batch.candidates.size)
        out = np.empty(batch.candidates.size, dtype=np.float32)
        self._cross_sums(state.table, cached, jobs.left, reads, batch, out)
        out += np.repeat(scalar, batch.counts())
        absent = np.flatnonzero(np.isnan(out))  # absent items score NaN (see item_rows)
        if absent.size:
            rows = items.index.lookup(batch.candidates[absent])
            unknown = absent[rows == items.index.unknown_row]
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
        """Item records and encoded fields, cached under (name, version, items.token)."""
        key = (model.name, model.version, items.token)
        cached = self.items.get(key, model.weights)
        if cached is None:
            state = self.model_state(model)
            terms = item_terms(model.spec, model.hash_bits, items)
            encoded = encode_items(model.spec, model.hash_bits, item_values(model.spec, items))
            right = np.ascontiguousarray(terms.right[:, encoded.direct])
            partial = partial_logits(terms, state.table, state.item_dense)
            cached = ItemState.of(partial, right, encoded, items)
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
        reads: BatchReads,
        batch: ScoringBatch,
        out: NDArray[np.float32],
    ) -> None:
        """``out[i]`` = the per-job cross weights of candidate ``i`` plus its item partial
        (NaN for a candidate absent from the item table)."""
        enc = cached.encoded
        hashed = np.ascontiguousarray(left[:, np.concatenate([enc.direct, reads.hashed_columns])])
        splits = batch.row_splits.tolist()
        counts = batch.counts()
        for j0 in range(0, left.shape[0], self.chunk_jobs):
            j1 = min(j0 + self.chunk_jobs, left.shape[0])
            start, stop = splits[j0], splits[j1]
            if stop == start:
                continue
            chunk_out = out[start:stop]
            block = cached.rows.read(batch.candidates[start:stop])  # one record per candidate
            _hashed_sums(table, cached, reads, block, hashed[j0:j1], counts[j0:j1], chunk_out)
            chunk_out += cached.rows.partial(block)
            _read_sums(cached, reads, block, counts[j0:j1], j0, j1, chunk_out)

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


def _hashed_sums(
    table: NDArray[np.float32],
    cached: ItemState,
    reads: BatchReads,
    block: NDArray[np.uint8],
    left: NDArray[np.uint32],
    counts: NDArray[np.int64],
    out: NDArray[np.float32],
) -> None:
    """``out[i]`` = sum of the crosses scored per candidate: item half XOR job half, one table
    gather each (a flat XOR with the job halves repeated per candidate beats a per-job
    broadcast). Item halves come from the record (``direct``) or from the field's code."""
    if left.shape[1] == 0:
        out[:] = 0.0
        return
    idx = np.repeat(left, counts, axis=0)
    d = cached.rows.layout.n_right
    if d:
        idx[:, :d] ^= cached.rows.right(block)
    for k, f in enumerate(reads.hashed_fields):
        idx[:, d + k] ^= np.take(cached.encoded.fields[f].right, cached.rows.code(block, f))
    row_sums(np.take(table, idx, mode="clip"), out)


def _read_sums(
    cached: ItemState,
    reads: BatchReads,
    block: NDArray[np.uint8],
    counts: NDArray[np.int64],
    j0: int,
    j1: int,
    out: NDArray[np.float32],
) -> None:
    """Add every grid or cross-row read of ``reads`` to ``out`` (one chunk of jobs)."""
    if not reads.fields:
        return
    idx = np.repeat(reads.bases[:, j0:j1], counts, axis=1)
    cell = np.empty(out.size, dtype=np.float32)
    for r, (source, f) in enumerate(zip(reads.sources, reads.fields, strict=True)):
        idx[r] += cached.rows.code(block, f)
        np.take(source, idx[r], out=cell)
        out += cell
