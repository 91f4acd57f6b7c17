"""Feature sources: the interface between the scoring path and wherever features live.

`FeatureSource` is what every store implements (the embedded file store in
`consumer.features.files`, the HTTP/Feast client in `consumer.features.http`);
`InMemoryFeatureSource` marks stores that answer without I/O. Callers never await a source
themselves: they go through `consumer.features.fetcher.FeatureFetcher`, the one bridge.

A source answers for a whole micro-batch at once: user features aligned with the jobs, and an
`ItemTable` covering the candidates (the embedded store hands out its whole table, whose stable
token lets the kernel cache per-item partial scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from scoring.features import ItemTable, UserFeatures


@dataclass(frozen=True, slots=True)
class BatchFeatures:
    users: UserFeatures
    items: ItemTable
    degraded: bool = False  # the store was unavailable: scored with the model's defaults

    @staticmethod
    def defaults() -> BatchFeatures:
        """No features at all: every term takes the model's defaults."""
        empty = ItemTable.from_raw(np.zeros(0, np.int64), {}, {})
        return BatchFeatures(UserFeatures(categorical={}, dense={}), empty, degraded=True)


class FeatureSource(Protocol):
    """Where a micro-batch's features come from."""

    async def fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> BatchFeatures: ...

    async def close(self) -> None: ...


@runtime_checkable
class InMemoryFeatureSource(FeatureSource, Protocol):
    """A source whose features are already in memory: callers may skip the event loop."""

    def fetch_now(self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]) -> BatchFeatures:
        """What ``fetch`` returns, computed on the calling thread without awaiting anything."""
        ...
