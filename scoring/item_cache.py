"""Per-item partial scores, computed once per (model, item table) and kept in a bounded LRU.

An item's partial score is everything that depends on the item alone: the item id, item
categoricals, item x item crosses and item dense features. Per job, the kernel then only adds the
job-side scalar and the user/context x item crosses, whose item halves or dictionary codes (see
``value_grid``) are cached too, all in one fixed-width record per item (``item_rows``).

Invariants: entries are keyed by ``(model.name, model.version, items.token)`` and also remember the
exact weight array they were computed from, so a model rebuilt under the same name and version but
with different weights is never served a stale entry. The records mark absent items with a NaN
partial logit (see ``item_rows``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from scoring.features import ItemTable
from scoring.item_rows import ItemRows, RowLayout
from scoring.terms import ItemTerms
from scoring.value_grid import EncodedItems

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ItemState:
    """Cached per-item data for one model: each item's record (partial logit, the item halves of
    the job crosses scored per candidate, the codes of the encoded fields) and the encoded
    fields' per-value cross rows (``encoded``, whose codes live in the records only)."""

    rows: ItemRows
    encoded: EncodedItems

    @staticmethod
    def of(
        partial: NDArray[np.float32],
        right: NDArray[np.uint32],
        encoded: EncodedItems,
        items: ItemTable,
    ) -> ItemState:
        """``partial`` and ``right`` (the halves of ``encoded.direct``) have one row per item and
        a trailing unknown row, like ``encoded.codes``."""
        layout = RowLayout.of(right.shape[1], [f.vocab for f in encoded.fields])
        rows = ItemRows(layout, partial, right, encoded.codes, items.ids, items.index)
        return ItemState(rows, replace(encoded, codes=()))


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
