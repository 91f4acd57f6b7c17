"""Term indices of a model: the bridge between the hash spec and the kernel (and trainers).

Every sparse term of a prediction is one lookup in the extended weight table ``weight_table``:
the model's ``2**bits`` weights followed by one 0.0. Indices are uint32; a missing term carries a
flag bit (``1 << 30`` for a missing single feature or first cross field, ``1 << 31`` for a missing
second cross field) that puts it at or past ``2**bits``, so ``np.take(..., mode="clip")`` reads the
trailing 0.0 and the term contributes nothing without a branch or a mask.

A cross index is ``left ^ right`` where ``left = index(mix64(ka ^ CROSS_LEFT))`` is computed per
job (or per item for item x item crosses) and ``right = index(mix64(kb ^ CROSS_RIGHT))`` per item:
the top bits of an XOR are the XOR of the top bits, so this equals ``to_index(cross_keys(ka, kb))``
and a flag on either side survives the XOR. Both flags set gives ``3 << 30``, still out of range.

Invariants: ``JobTerms`` rows align with jobs and ``ItemTerms`` rows with item-table rows plus one
trailing "unknown item" row; every column order follows ``Layout``; dense values are already
standardized (``(x - mean) / std``, missing -> default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from scoring.features import ItemTable, UserFeatures
from scoring.hashing import (
    CROSS_LEFT,
    CROSS_RIGHT,
    feature_keys,
    field_seed,
    hash_ints,
    hash_strings,
    mix64_inplace,
)
from scoring.spec import CONTEXT, ITEM_ID, USER, DenseFeature, FeatureSpec

MISSING: Final = np.uint32(1 << 30)
MISSING_RIGHT: Final = np.uint32(1 << 31)
CONTEXT_MEMO_SIZE: Final = 1 << 16  # distinct context strings whose hashes are remembered
_CONTEXT_HASHES: dict[str, int] = {}

U32 = NDArray[np.uint32]
U64 = NDArray[np.uint64]
F64 = NDArray[np.float64]


def _top(keys: U64, bits: int) -> U32:
    keys >>= np.uint64(64 - bits)
    return keys.astype(np.uint32)


def single_index(name: str, values: U64, bits: int) -> U32:
    """Index of a single categorical feature; value hash 0 (missing) -> flagged."""
    idx = _top(feature_keys(name, values), bits)
    idx[values == 0] = MISSING
    return idx


def left_index(name: str, values: U64, bits: int) -> U32:
    """The first-field half of a cross index (flagged ``MISSING`` where the value is missing)."""
    keys = feature_keys(name, values)
    keys ^= np.uint64(CROSS_LEFT)
    idx = _top(mix64_inplace(keys), bits)
    idx[values == 0] = MISSING
    return idx


def right_index(name: str, values: U64, bits: int) -> U32:
    """The second-field half of a cross index (flagged ``MISSING_RIGHT`` where missing)."""
    keys = feature_keys(name, values)
    keys ^= np.uint64(CROSS_RIGHT)
    idx = _top(mix64_inplace(keys), bits)
    idx[values == 0] = MISSING_RIGHT
    return idx


def weight_table(weights: NDArray[np.float32]) -> NDArray[np.float32]:
    """The weights followed by one 0.0: where flagged (missing) indices land."""
    table = np.append(weights, np.float32(0.0)).astype(np.float32, copy=False)
    table.setflags(write=False)
    return table


def standardize(
    features: Sequence[DenseFeature], columns: Mapping[str, NDArray[np.float32]], n: int
) -> F64:
    """``(x - mean) / std`` per feature (one column each); missing or non-finite -> default."""
    out = np.empty((n, len(features)), dtype=np.float64)
    for i, feat in enumerate(features):
        col = columns.get(feat.field)
        x = np.full(n, feat.default) if col is None else col.astype(np.float64)
        x[~np.isfinite(x)] = feat.default
        out[:, i] = (x - feat.mean) / feat.std
    return out


@dataclass(frozen=True, slots=True)
class JobTerms:
    """Per-job terms: single indices ``(n, s)``, cross left halves ``(n, c)``, dense ``(n, d)``."""

    singles: U32
    left: U32
    dense: F64


@dataclass(frozen=True, slots=True)
class ItemTerms:
    """Per-item terms (one extra trailing row for unknown items): singles and item crosses
    ``(m, t)``, cross right halves ``(m, c)``, dense ``(m, d)``."""

    singles: U32
    right: U32
    dense: F64


def job_values(
    spec: FeatureSpec, users: UserFeatures, contexts: Sequence[Mapping[str, str]]
) -> dict[str, U64]:
    """Value hashes of every per-job field by full name (per-job Python work only)."""
    n = len(contexts)
    values = {
        f"{USER}.{f}": users.categorical.get(f, np.zeros(n, np.uint64)) for f in spec.user_fields
    }
    fields = spec.context_fields
    if fields:
        hashed = _context_hashes(fields, contexts)
        for i, f in enumerate(fields):
            values[f"{CONTEXT}.{f}"] = hashed[i]
    return values


def _context_hashes(fields: Sequence[str], contexts: Sequence[Mapping[str, str]]) -> U64:
    """``(len(fields), n)`` value hashes of the context strings (missing -> 0).

    Context values repeat across jobs and batches (devices, pages, hours), so each distinct string
    is hashed once (vectorized, then remembered in a bounded memo of this pure function) and the
    jobs look their hash up.
    """
    raw = [ctx.get(f) for f in fields for ctx in contexts]
    local: dict[str | None, int] = {None: 0}
    new: list[str] = []
    for value in dict.fromkeys(raw):
        if value is None:
            continue
        known = _CONTEXT_HASHES.get(value)
        if known is None:
            new.append(value)
        else:
            local[value] = known
    if new:
        hashed = dict(zip(new, hash_strings(new).tolist(), strict=True))
        local.update(hashed)
        # Each step is one atomic dict operation: threads sharing the memo never see a torn one.
        if len(_CONTEXT_HASHES) + len(hashed) > CONTEXT_MEMO_SIZE:
            _CONTEXT_HASHES.clear()
        _CONTEXT_HASHES.update(hashed)
    flat = np.fromiter((local[v] for v in raw), dtype=np.uint64, count=len(raw))
    return flat.reshape(len(fields), len(contexts))


def job_terms(
    spec: FeatureSpec, bits: int, users: UserFeatures, contexts: Sequence[Mapping[str, str]]
) -> JobTerms:
    """Term indices of every job of a batch.

    Every per-job field is hashed in one pass over a ``(fields, jobs)`` array rather than one
    small pass per field: a micro-batch holds few jobs, so the number of numpy calls, not their
    size, is what costs.
    """
    n = len(contexts)
    users.check_rows(n)
    values = job_values(spec, users, contexts)
    names = list(values)
    user_dense = [d for d in spec.dense if d.group == USER]
    dense = standardize(user_dense, users.dense, n)
    if not names:
        empty = np.empty((n, 0), dtype=np.uint32)
        return JobTerms(empty, empty, dense)
    raw = np.stack([values[name] for name in names])  # (fields, n)
    missing = raw == 0
    keys = raw ^ np.array([[field_seed(name)] for name in names], dtype=np.uint64)
    mix64_inplace(keys)
    singles = _top(keys.copy(), bits)
    singles[missing] = MISSING
    rows = [names.index(first) for first, _ in spec.job_crosses()]
    left_keys = keys[rows]
    left_keys ^= np.uint64(CROSS_LEFT)
    left = _top(mix64_inplace(left_keys), bits)
    left[missing[rows]] = MISSING
    return JobTerms(np.ascontiguousarray(singles.T), np.ascontiguousarray(left.T), dense)


def item_values(spec: FeatureSpec, items: ItemTable) -> dict[str, U64]:
    """Value hashes of every item field by full name, plus a trailing unknown-item row."""
    n = len(items) + 1
    values = {ITEM_ID: np.append(hash_ints(items.ids), np.uint64(0))}
    for f in spec.item_fields:
        col = items.categorical.get(f)
        values[f"item.{f}"] = (
            np.zeros(n, np.uint64) if col is None else np.append(col, np.uint64(0))
        )
    return values


def item_terms(spec: FeatureSpec, bits: int, items: ItemTable) -> ItemTerms:
    """Term indices of every item of a table (+ the unknown row, where everything is missing)."""
    values = item_values(spec, items)
    item_dense = [d for d in spec.dense if d.group != USER]
    dense_cols = {k: np.append(v, np.float32(np.nan)) for k, v in items.dense.items()}
    return _item_terms_from(spec, bits, values, standardize(item_dense, dense_cols, len(items) + 1))


def unknown_item_terms(spec: FeatureSpec, bits: int, ids: NDArray[np.int64]) -> ItemTerms:
    """Term indices of items absent from the table: only item.id is known."""
    m = ids.size
    values = {
        name: np.zeros(m, np.uint64)
        for name in spec.categorical_names()
        if name.startswith("item.")
    }
    values[ITEM_ID] = hash_ints(ids)
    item_dense = [d for d in spec.dense if d.group != USER]
    return _item_terms_from(spec, bits, values, standardize(item_dense, {}, m))


def _item_terms_from(spec: FeatureSpec, bits: int, values: dict[str, U64], dense: F64) -> ItemTerms:
    m = dense.shape[0]
    singles = [single_index(name, values[name], bits) for name in values]
    singles += [
        left_index(a, values[a], bits) ^ right_index(b, values[b], bits)
        for a, b in spec.item_crosses()
    ]
    # Many crosses share their item field: hash each field's right halves once (24 crosses of
    # the heavy spec name 6 item fields), then reuse the column.
    halves: dict[str, U32] = {}
    for _, second in spec.job_crosses():
        if second not in halves:
            halves[second] = right_index(second, values[second], bits)
    right = [halves[second] for _, second in spec.job_crosses()]
    return ItemTerms(_stack(singles, m), _stack(right, m), dense)


def _stack(columns: list[U32], n: int) -> U32:
    if not columns:
        return np.empty((n, 0), dtype=np.uint32)
    return np.ascontiguousarray(np.stack(columns, axis=1))
