"""A plain-Python per-candidate reference of ``Scorer.predict``: test oracle and naive baseline.

It re-implements the hash spec with Python integers (independent of ``scoring.hashing``) and scores
every candidate from scratch with loops and ``math.exp``, in float64. It shares nothing with the
kernel except the input records, so agreement between the two checks the spec, the caching and the
vectorization at once. It is deliberately slow; never use it to serve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from scoring.batch import ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.model import LRModel
from scoring.spec import DenseFeature

_MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & _MASK
    return h


def mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def string_value(s: str) -> int:
    return fnv1a64(s.encode("utf-8")) or 1


def int_value(x: int) -> int:
    return mix64(((x & _MASK) + 0x9E3779B97F4A7C15) & _MASK) or 1


def feature_key(field: str, value: int) -> int:
    return mix64(value ^ fnv1a64(field.encode("utf-8")))


def cross_key(ka: int, kb: int) -> int:
    return mix64(ka ^ 0xD6E8FEB86659FD93) ^ mix64(kb ^ 0xA0761D6478BD642F)


def reference_logits(
    model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
) -> NDArray[np.float64]:
    """Logit of every candidate, one candidate at a time."""
    row_of = {item_id: row for row, item_id in enumerate(items.ids.tolist())}
    splits = batch.row_splits.tolist()
    out = np.empty(batch.candidates.size, dtype=np.float64)
    for j in range(batch.n_jobs):
        job = _job_values(model, users, batch.contexts[j], j)
        for i in range(splits[j], splits[j + 1]):
            item_id = int(batch.candidates[i])
            item = _item_values(model, items, item_id, row_of.get(item_id))
            out[i] = _logit(model, {**job, **item})
    return out


def reference_predict(
    model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
) -> NDArray[np.float64]:
    """Probability of every candidate, one candidate at a time."""
    logits = reference_logits(model, batch, users, items)
    return np.array([_sigmoid(float(x)) for x in logits], dtype=np.float64)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _job_values(
    model: LRModel, users: UserFeatures, context: Mapping[str, str], j: int
) -> dict[str, int | float]:
    values: dict[str, int | float] = {}
    for f in model.spec.user_fields:
        column = users.categorical.get(f)
        values[f"user.{f}"] = 0 if column is None else int(column[j])
    for f in model.spec.context_fields:
        values[f"context.{f}"] = string_value(context[f]) if f in context else 0
    for d in model.spec.dense:
        if d.group == "user":
            numbers = users.dense.get(d.field)
            values[d.name] = _dense(d, None if numbers is None else float(numbers[j]))
    return values


def _item_values(
    model: LRModel, items: ItemTable, item_id: int, row: int | None
) -> dict[str, int | float]:
    values: dict[str, int | float] = {"item.id": int_value(item_id)}
    for f in model.spec.item_fields:
        column = items.categorical.get(f)
        values[f"item.{f}"] = 0 if column is None or row is None else int(column[row])
    for d in model.spec.dense:
        if d.group == "item":
            numbers = items.dense.get(d.field)
            x = None if numbers is None or row is None else float(numbers[row])
            values[d.name] = _dense(d, x)
    return values


def _dense(feature: DenseFeature, x: float | None) -> float:
    if x is None or not math.isfinite(x):
        x = feature.default
    return (x - feature.mean) / feature.std


def _logit(model: LRModel, values: Mapping[str, int | float]) -> float:
    shift = 64 - model.hash_bits
    total = model.bias
    keys: dict[str, int] = {}
    for name in model.spec.categorical_names():
        value = int(values[name])
        if value:
            keys[name] = feature_key(name, value)
            total += float(model.weights[keys[name] >> shift])
    for first, second in model.spec.crosses:
        if first in keys and second in keys:
            total += float(model.weights[cross_key(keys[first], keys[second]) >> shift])
    for d, w in zip(model.spec.dense, model.dense_weights.tolist(), strict=True):
        total += w * float(values[d.name])
    return total
