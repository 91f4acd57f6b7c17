"""Per-item kernel state built before it is needed: at start-up, and for a reloaded snapshot.

The kernel derives per-item state from each (model, item table) pair (partial logits, cross
halves; ``Scorer.item_state``) on first use: for a million items that is about a second of work,
a stall for the batch that triggers it. Two places build it ahead instead:

- start-up: `warm` fills the serving scorer's cache before the loop starts, and with
  ``--workers N`` before the fork, so the workers share those arrays copy-on-write;
- a snapshot reload: the watcher thread calls `PreparedScorer.prepare` with the new table before
  swapping it in. ``prepare`` builds the state with a private ``Scorer`` (a scorer's caches and
  buffers belong to one thread) and parks it; the scoring thread adopts it into its own cache on
  the first batch that uses the new table, so no batch builds it.

Invariants: a parked state is adopted only for the exact weight array it was built from (the
kernel cache's own rule); at most ``MAX_PREPARED`` are parked (older ones are dropped, and would be
built on use as before); the parked map is replaced, never mutated, under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

from scoring.features import ItemTable
from scoring.item_cache import ItemState
from scoring.kernel import Scorer
from scoring.model import LRModel

MAX_PREPARED: Final = 8

Key = tuple[str, str, int]


def _key(model: LRModel, items: ItemTable) -> Key:
    return (model.name, model.version, items.token)


def warm(scorer: Scorer, models: Iterable[LRModel], items: ItemTable) -> None:
    """Build ``scorer``'s per-item state of ``items`` for every model (on the calling thread)."""
    for model in models:
        scorer.item_state(model, items)


class PreparedScorer(Scorer):
    """A `Scorer` that also adopts per-item state prepared on another thread."""

    def __init__(self, chunk_jobs: int = 16, max_models: int = 2, max_item_tables: int = 4) -> None:
        super().__init__(chunk_jobs, max_models, max_item_tables)
        self._lock = threading.Lock()
        self._prepared: dict[Key, tuple[object, ItemState]] = {}

    def prepare(self, models: Iterable[LRModel], items: ItemTable) -> int:
        """Build the per-item state of ``items`` for ``models`` now (any thread); returns how
        many were built. The scoring thread adopts them when it first scores ``items``."""
        builder = Scorer(self.chunk_jobs)
        built = [(_key(m, items), (m.weights, builder.item_state(m, items))) for m in models]
        with self._lock:
            merged = {**self._prepared, **dict(built)}
            self._prepared = dict(list(merged.items())[-MAX_PREPARED:])
        return len(built)

    @property
    def prepared(self) -> int:
        """States parked and not yet adopted."""
        return len(self._prepared)

    def item_state(self, model: LRModel, items: ItemTable) -> ItemState:
        if self._prepared:
            self._adopt(model, items)
        return super().item_state(model, items)

    def _adopt(self, model: LRModel, items: ItemTable) -> None:
        key = _key(model, items)
        with self._lock:
            entry = self._prepared.get(key)
            if entry is None:
                return
            self._prepared = {k: v for k, v in self._prepared.items() if k != key}
        owner, state = entry
        if owner is model.weights:
            self.items.put(key, model.weights, state)
