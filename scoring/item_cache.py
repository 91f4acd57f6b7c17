"""Per-item partial scores, computed once per (model, item table) and kept in a bounded LRU.

An item's partial score is everything that depends on the item alone: the item id, item
categoricals, item x item crosses and item dense features. Per job, the kernel then only adds the
job-side scalar and the user/context x item crosses, whose item halves (``right``) or dictionary
codes (``encoded``, see ``value_grid``) are cached too.

Invariants: entries are keyed by ``(model.name, model.version, items.token)`` and also remember the
exact weight array they were computed from, so a model rebuilt under the same name and version but
with different weights is never served a stale entry. Row ``len(items)`` of every array is the
"unknown item" row (everything missing, dense features at their defaults).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from scoring.terms import ItemTerms
from scoring.value_grid import EncodedItems

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ItemState:
    """Cached per-item data for one model: partial logits ``(m,)``, the encoded item fields, and
    the right halves ``(m, d)`` of the ``d`` job crosses scored per candidate (``encoded.direct``).

    ``packed`` holds all three per item row as uint32 columns (partial bits, right halves, codes)
    so a candidate costs one random row read in the item data instead of three.
    """

    partial: NDArray[np.float32]
    right: NDArray[np.uint32]
    encoded: EncodedItems
    packed: NDArray[np.uint32]

    @staticmethod
    def of(
        partial: NDArray[np.float32], right: NDArray[np.uint32], encoded: EncodedItems
    ) -> ItemState:
        d = right.shape[1]
        packed = np.empty((partial.size, 1 + d + encoded.n_fields), dtype=np.uint32)
        packed[:, 0] = partial.view(np.uint32)
        packed[:, 1 : 1 + d] = right
        packed[:, 1 + d :] = encoded.codes
        return ItemState(partial, right, encoded, packed)


def partial_logits(
    terms: ItemTerms, table: NDArray[np.float32], dense_weights: NDArray[np.float64]
) -> NDArray[np.float32]:
    """Sum of the item-only terms of each row of ``terms`` (float64 sum, float32 result)."""
    sparse = np.take(table, terms.singles, mode="clip").astype(np.float64).sum(axis=1)
    total: NDArray[np.float64] = sparse + terms.dense @ dense_weights
    return total.astype(np.float32)


@dataclass
class LruCache(Generic[K, V]):
    """A small least-recently-used map that also counts hits and misses."""

    capacity: int
    hits: int = 0
    misses: int = 0
    _entries: OrderedDict[K, tuple[object, V]] = field(default_factory=OrderedDict)

    def get(self, key: K, owner: object) -> V | None:
        """The value stored under ``key`` if it was stored for this exact ``owner`` object."""
        entry = self._entries.get(key)
        if entry is None or entry[0] is not owner:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: K, owner: object, value: V) -> None:
        self._entries[key] = (owner, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
