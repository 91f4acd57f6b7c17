"""Columnar, vectorized caches of entity features with a TTL and a size bound.

`Columns` is the unit of feature data between the HTTP client, the caches and the kernel tables:
sorted unique ids, hashed categorical columns (0 = missing) and float32 dense columns (NaN =
missing). `EntityCache` keeps such columns for many ids plus an expiry and a last-use time per
row; every operation is a handful of numpy calls over the ids of a micro-batch, never a Python
loop per id. An entity the store does not know (NOT_FOUND) is cached like any other row, with
every value missing: negative caching, under the same TTL.

Item tables for the kernel: `EntityCache.table` hands out one snapshot `ItemTable` of the whole
cache and keeps handing out that same object (same token) until the cache changes, so the kernel's
per-item partial scores stay cached across warm batches. A changed cache gets a fresh token
(random base + generation: equal tokens only ever name equal content). When the cache is much
larger than a batch, rebuilding a whole snapshot would cost more than it saves; the batch then
gets a table of just its items, whose token is a digest of its content.

Invariants: ``ids`` is strictly increasing and every column has one entry per id; rows are
updated in place or inserted in order (``np.insert`` at ``searchsorted`` positions); eviction
(least recently used first) happens only in `trim`, after the batch's table was built, so a
batch never loses rows it asked for.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scoring.features import ItemTable, content_token

SNAPSHOT_MIN_ROWS = 50_000  # whole-cache snapshots up to this size are always fine...
SNAPSHOT_BATCH_FACTOR = 8  # ...and beyond it while the cache is at most 8x the batch's items
_TOKEN_MASK = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Columns:
    """Values for sorted unique ``ids``: categorical hashed (0 missing), dense NaN missing."""

    ids: NDArray[np.int64]
    categorical: dict[str, NDArray[np.uint64]]
    dense: dict[str, NDArray[np.float32]]

    def take(self, rows: NDArray[np.intp], ids: NDArray[np.int64]) -> Columns:
        """The values of ``rows``, relabelled with ``ids`` (fresh arrays)."""
        return Columns(
            ids,
            {k: v[rows] for k, v in self.categorical.items()},
            {k: v[rows] for k, v in self.dense.items()},
        )

    @staticmethod
    def empty(ids: NDArray[np.int64]) -> Columns:
        """No feature columns: every value of ``ids`` missing."""
        return Columns(ids, {}, {})

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        """Chunks of consecutive sorted ids back into one (columns a chunk lacks: missing)."""
        if len(parts) == 1:
            return parts[0]
        ids = np.concatenate([p.ids for p in parts]) if parts else np.zeros(0, np.int64)
        cat = {k for p in parts for k in p.categorical}
        dense = {k for p in parts for k in p.dense}
        return Columns(
            ids,
            {k: np.concatenate([p.categorical.get(k, np.zeros(p.ids.size, np.uint64))
                                for p in parts]) for k in cat},
            {k: np.concatenate([p.dense.get(k, np.full(p.ids.size, np.nan, np.float32))
                                for p in parts]) for k in dense},
        )  # fmt: skip

    def table(self, token: int | None = None) -> ItemTable:
        """These columns as a kernel table; the token defaults to a digest of the content."""
        if token is None:
            token = content_token(self.ids, self.categorical, self.dense)
        return ItemTable(ids=self.ids, categorical=self.categorical, dense=self.dense, token=token)


class EntityCache:
    """Feature rows by id with a TTL (seconds of `Clock.monotonic`) and a bound on the row count."""

    def __init__(self, ttl_s: float, capacity: int) -> None:
        self.ttl_s = ttl_s
        self.capacity = max(capacity, 1)
        self._ids = np.zeros(0, np.int64)
        self._expires = np.zeros(0, np.float64)
        self._used = np.zeros(0, np.float64)
        self._cat: dict[str, NDArray[np.uint64]] = {}
        self._dense: dict[str, NDArray[np.float32]] = {}
        self._token_base = secrets.randbits(62)
        self._generation = 0
        self._snapshot: ItemTable | None = None

    def __len__(self) -> int:
        return int(self._ids.size)

    @property
    def generation(self) -> int:
        """Bumped by every change of content (tests and metrics read it)."""
        return self._generation

    def fresh(self, ids: NDArray[np.int64], now: float) -> NDArray[np.bool_]:
        """Which of the sorted unique ``ids`` hold an unexpired row; marks those rows used."""
        rows, found = self._rows(ids)
        ok = found & (self._expires[rows] > now) if ids.size and self._ids.size else found
        self._used[rows[ok]] = now
        return ok

    def put(self, cols: Columns, now: float) -> None:
        """Insert or refresh the rows of ``cols`` (new columns are added, missing elsewhere)."""
        if cols.ids.size == 0:
            return
        self._add_columns(cols)
        rows, found = self._rows(cols.ids)
        at = rows[found]
        for name, column in self._cat.items():
            column[at] = cols.categorical[name][found] if name in cols.categorical else 0
        for name, dense in self._dense.items():
            dense[at] = cols.dense[name][found] if name in cols.dense else np.nan
        self._expires[at] = now + self.ttl_s
        self._used[at] = now
        self._insert(cols, ~found, np.searchsorted(self._ids, cols.ids[~found]), now)
        self._changed()

    def gather(self, ids: NDArray[np.int64]) -> Columns:
        """Rows of ``ids`` (expired rows included); ids the cache lacks get missing values."""
        rows, found = self._rows(ids)
        cols = Columns(self._ids, self._cat, self._dense).take(rows, ids)
        if not bool(found.all()):
            for column in cols.categorical.values():
                column[~found] = 0
            for dense in cols.dense.values():
                dense[~found] = np.nan
        return cols

    def table(self, ids: NDArray[np.int64]) -> ItemTable:
        """A kernel table covering ``ids``: the (unchanged if possible) snapshot, or a subset."""
        if self._snapshot is not None:
            return self._snapshot
        if self._ids.size <= max(SNAPSHOT_MIN_ROWS, SNAPSHOT_BATCH_FACTOR * ids.size):
            copy = Columns(
                self._ids.copy(),
                {k: v.copy() for k, v in self._cat.items()},
                {k: v.copy() for k, v in self._dense.items()},
            )
            self._snapshot = copy.table((self._token_base + self._generation) & _TOKEN_MASK)
            return self._snapshot
        return self.gather(ids).table()

    def trim(self) -> int:
        """Evict the least recently used rows beyond the capacity; returns how many went."""
        excess = self._ids.size - self.capacity
        if excess <= 0:
            return 0
        keep = np.sort(np.argpartition(self._used, excess)[excess:])
        self._ids, self._expires, self._used = (
            self._ids[keep],
            self._expires[keep],
            self._used[keep],
        )
        self._cat = {k: v[keep] for k, v in self._cat.items()}
        self._dense = {k: v[keep] for k, v in self._dense.items()}
        self._changed()
        return excess

    def _rows(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        if self._ids.size == 0:
            return np.zeros(ids.size, np.intp), np.zeros(ids.size, bool)
        rows = np.searchsorted(self._ids, ids)
        np.minimum(rows, self._ids.size - 1, out=rows)
        return rows, self._ids[rows] == ids

    def _add_columns(self, cols: Columns) -> None:
        n = self._ids.size
        for name in cols.categorical.keys() - self._cat.keys():
            self._cat[name] = np.zeros(n, np.uint64)
        for name in cols.dense.keys() - self._dense.keys():
            self._dense[name] = np.full(n, np.nan, np.float32)

    def _insert(
        self, cols: Columns, new: NDArray[np.bool_], at: NDArray[np.intp], now: float
    ) -> None:
        if not bool(new.any()):
            return
        count = int(new.sum())
        self._ids = np.insert(self._ids, at, cols.ids[new])
        self._expires = np.insert(self._expires, at, np.full(count, now + self.ttl_s))
        self._used = np.insert(self._used, at, np.full(count, now))
        for name, column in self._cat.items():
            values = cols.categorical[name][new] if name in cols.categorical else 0
            self._cat[name] = np.insert(column, at, values)
        for name, dense in self._dense.items():
            fill = cols.dense[name][new] if name in cols.dense else np.float32(np.nan)
            self._dense[name] = np.insert(dense, at, fill)

    def _changed(self) -> None:
        self._generation += 1
        self._snapshot = None
