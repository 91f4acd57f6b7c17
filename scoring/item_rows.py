"""One fixed-width record per item: all the per-item data a candidate reads, in one memory read.

A record holds, in native byte order and each column aligned to its size:

    bytes [0, 4)          the item's partial logit (float32, see ``item_cache``)
    next 4 * d bytes      the item halves of the ``d`` job crosses scored per candidate (uint32)
    next 2 bytes each     the codes of encoded fields with more than 256 values (uint16)
    next 1 byte each      the codes of the other encoded fields (uint8)
    padding               up to 8, 16, 32 or 64 bytes

numpy copies records of those sizes with one move each: a 20- or 28-byte record cost 1.7x a
16-byte one per random read here. The heavy workload's record (partial, one half, five codes) is 16
bytes.

Records are addressed one of two ways, chosen at build time:

- by id, when the ids span a compact range (at most ``DENSE_FACTOR`` slots per item): record
  ``id - ids[0] + 1``, with one sentinel slot below and one above the range, so a candidate costs
  a subtraction and one clipped read, and no id -> row lookup at all;
- by row otherwise: ``ItemIndex.lookup`` maps ids to rows, then one read.

Invariants: every slot that holds no item (gaps between ids, the two sentinels, the trailing
unknown row) holds the unknown-item record, whose partial logit is NaN: a candidate absent from the
table always scores NaN, so the kernel finds absent candidates among the NaN scores (and confirms
them with the index) without a second per-candidate read. Codes of the unknown record are 0
("missing") and its halves ``MISSING_RIGHT``, as ``terms`` gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from scoring.item_index import DENSE_FACTOR, DENSE_MIN_SLOTS, ItemIndex

SMALL_VOCAB: Final = 256  # fields with at most this many codes take one byte
RECORD_SIZES: Final = (8, 16, 32, 64)
_SAFE_ID: Final = 1 << 62  # by-id addressing only for ids well inside int64 (no wrap-around)

U8 = NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class RowLayout:
    """Byte layout of a record: its width, the number of halves, each field's code offset."""

    width: int
    n_right: int
    code_offsets: tuple[int, ...]
    code_wide: tuple[bool, ...]

    @staticmethod
    def of(n_right: int, vocab_sizes: Sequence[int]) -> RowLayout:
        wide = tuple(v > SMALL_VOCAB for v in vocab_sizes)
        offsets = [0] * len(wide)
        at = 4 + 4 * n_right
        for f in [f for f, w in enumerate(wide) if w] + [f for f, w in enumerate(wide) if not w]:
            offsets[f] = at
            at += 2 if wide[f] else 1
        width = next((s for s in RECORD_SIZES if s >= at), (at + 7) // 8 * 8)
        return RowLayout(width, n_right, tuple(offsets), wide)


class ItemRows:
    """The records of one item table for one model, and how a candidate id finds its record."""

    __slots__ = ("_base", "_index", "layout", "records")

    def __init__(
        self,
        layout: RowLayout,
        partial: NDArray[np.float32],
        right: NDArray[np.uint32],
        codes: Sequence[NDArray[np.uint16]],
        ids: NDArray[np.int64],
        index: ItemIndex,
    ) -> None:
        """``partial``, ``right`` (``(m + 1, d)``) and each field's ``codes`` have one row per
        item of ``ids`` (sorted, unique) and a trailing unknown-item row."""
        self.layout = layout
        self._index = index
        by_row = _records(layout, partial, right, codes)
        self._base = _id_base(ids)
        if self._base is None:
            self.records = by_row
        else:
            slots = np.full(int(ids[-1]) - self._base + 2, ids.size, dtype=np.int64)
            slots[ids - self._base] = np.arange(ids.size)
            self.records = by_row[slots]

    @property
    def by_id(self) -> bool:
        return self._base is not None

    def read(self, candidates: NDArray[np.int64]) -> U8:
        """The ``(len(candidates), width)`` bytes of each candidate's record."""
        if self._base is None:
            slots = self._index.lookup(candidates)
        else:
            slots = np.subtract(candidates, self._base)
        return (
            np.take(self.records, slots, mode="clip").view(np.uint8).reshape(-1, self.layout.width)
        )

    @staticmethod
    def partial(block: U8) -> NDArray[np.float32]:
        """The partial logit column of records read by ``read``."""
        return block[:, 0:4].view(np.float32)[:, 0]

    def right(self, block: U8) -> NDArray[np.uint32]:
        """The ``(n, d)`` halves of records read by ``read``."""
        return block[:, 4 : 4 + 4 * self.layout.n_right].view(np.uint32)

    def code(self, block: U8, field: int) -> NDArray[np.uint8] | NDArray[np.uint16]:
        """Field ``field``'s codes of records read by ``read``."""
        at = self.layout.code_offsets[field]
        if self.layout.code_wide[field]:
            wide: NDArray[np.uint16] = block[:, at : at + 2].view(np.uint16)[:, 0]
            return wide
        narrow: NDArray[np.uint8] = block[:, at]
        return narrow


def _id_base(ids: NDArray[np.int64]) -> int | None:
    """``ids[0] - 1`` when records can be laid out by id offset, else None."""
    if ids.size == 0:
        return None
    lo, hi = int(ids[0]) - 1, int(ids[-1]) + 1
    compact = hi - lo - 1 <= max(DENSE_FACTOR * ids.size, DENSE_MIN_SLOTS)
    return lo if compact and lo >= -_SAFE_ID and hi <= _SAFE_ID else None


def _records(
    layout: RowLayout,
    partial: NDArray[np.float32],
    right: NDArray[np.uint32],
    codes: Sequence[NDArray[np.uint16]],
) -> NDArray[np.void]:
    """One record per row (rows as given, the last one the unknown item)."""
    block = np.zeros((partial.size, layout.width), dtype=np.uint8)
    block[:, 0:4].view(np.float32)[:, 0] = partial
    block[-1, 0:4].view(np.float32)[0] = np.nan
    block[:, 4 : 4 + 4 * layout.n_right].view(np.uint32)[:] = right
    for f, column in enumerate(codes):
        at = layout.code_offsets[f]
        if layout.code_wide[f]:
            block[:, at : at + 2].view(np.uint16)[:, 0] = column
        else:
            block[:, at] = column
    return block.view(f"V{layout.width}").ravel()
