"""Hashed design matrices for trainers, built with exactly the serving hash and term code.

A trainer (scikit-learn, or any solver taking a CSR matrix) fits one coefficient per weight-table
slot plus one per dense feature. ``hashed_design`` returns, per example (a job row paired with one
item), the table indices of its present sparse terms in CSR form and its standardized dense
features; ``model_from_coefficients`` turns the fitted coefficients back into an ``LRModel``.

Invariants: indices come from ``scoring.terms`` (the functions the kernel uses), so a model fitted
on this design and served by ``Scorer`` reproduces the trainer's probabilities. Two terms of one
example hashing to the same slot appear twice in ``indices``; CSR consumers sum duplicates, and so
does the kernel. Dense columns follow ``spec.dense`` order. numpy only: no solver is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scoring.features import ItemTable, UserFeatures
from scoring.model import LRModel
from scoring.spec import USER, FeatureSpec
from scoring.terms import ItemTerms, item_terms, job_terms, unknown_item_terms


@dataclass(frozen=True, slots=True)
class HashedDesign:
    """CSR sparse part (``indptr``, ``indices``, all values 1.0) and dense part of a design."""

    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    dense: NDArray[np.float64]
    n_weights: int

    @property
    def n_rows(self) -> int:
        return int(self.indptr.size - 1)


def _item_rows(spec: FeatureSpec, bits: int, items: ItemTable, ids: NDArray[np.int64]) -> ItemTerms:
    terms = item_terms(spec, bits, items)
    rows = items.index.lookup(ids)
    out = ItemTerms(terms.singles[rows], terms.right[rows], terms.dense[rows])
    unknown = np.flatnonzero(rows == items.index.unknown_row)
    if unknown.size:
        fresh = unknown_item_terms(spec, bits, ids[unknown])
        out.singles[unknown], out.right[unknown] = fresh.singles, fresh.right
        out.dense[unknown] = fresh.dense
    return out


def hashed_design(
    spec: FeatureSpec,
    hash_bits: int,
    users: UserFeatures,
    contexts: Sequence[Mapping[str, str]],
    items: ItemTable,
    item_ids: NDArray[np.int64],
) -> HashedDesign:
    """Design rows for examples ``i``: user row ``i``, ``contexts[i]`` and item ``item_ids[i]``."""
    jobs = job_terms(spec, hash_bits, users, contexts)
    item = _item_rows(spec, hash_bits, items, np.asarray(item_ids, dtype=np.int64))
    terms = np.concatenate([jobs.singles, item.singles, jobs.left ^ item.right], axis=1)
    present = terms < (1 << hash_bits)
    indptr = np.zeros(terms.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.count_nonzero(present, axis=1), out=indptr[1:])
    is_user = np.array([d.group == USER for d in spec.dense], dtype=bool)
    dense = np.empty((terms.shape[0], len(spec.dense)), dtype=np.float64)
    dense[:, is_user] = jobs.dense
    dense[:, ~is_user] = item.dense
    return HashedDesign(indptr, terms[present].astype(np.int64), dense, 1 << hash_bits)


def model_from_coefficients(
    name: str,
    version: str,
    created_at: str,
    spec: FeatureSpec,
    hash_bits: int,
    coefficients: NDArray[np.float64],
    intercept: float,
) -> LRModel:
    """An ``LRModel`` from fitted coefficients laid out as ``[sparse slots..., dense...]``."""
    n_weights = 1 << hash_bits
    coef = np.asarray(coefficients, dtype=np.float64).ravel()
    if coef.size != n_weights + len(spec.dense):
        raise ValueError(f"expected {n_weights + len(spec.dense)} coefficients, got {coef.size}")
    return LRModel(
        name=name,
        version=version,
        created_at=created_at,
        hash_bits=hash_bits,
        spec=spec,
        bias=float(intercept),
        weights=coef[:n_weights].astype(np.float32),
        dense_weights=coef[n_weights:].astype(np.float32),
    )
