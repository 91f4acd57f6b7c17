"""What a feature source hands to the kernel: per-job user features and a table of items.

Field names in these mappings are bare (``"segment"``, ``"price"``); the spec prefixes them.
Categorical values are value hashes (see ``scoring.hashing``) with 0 meaning missing; dense values
are float32 with NaN (or any non-finite value) meaning missing. A field absent from a mapping is
missing for every row.

Invariants: every column of ``UserFeatures`` has one entry per job of the batch it accompanies;
every column of an ``ItemTable`` has one entry per id; ``ItemTable.ids`` is strictly increasing;
``ItemTable.token`` identifies the content (``from_raw`` derives it from a digest of the content),
so the kernel may cache per-item work under it. Arrays are made read-only on construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoring.errors import InputError
from scoring.hashing import hash_strings
from scoring.item_index import ItemIndex


def _dense_column(values: Sequence[float | None]) -> NDArray[np.float32]:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


def _frozen(array: NDArray[Any], dtype: type[Any], what: str, n: int | None) -> NDArray[Any]:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise InputError(f"{what} must be a 1-D {np.dtype(dtype).name} array")
    if n is not None and array.size != n:
        raise InputError(f"{what} has {array.size} rows, expected {n}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True)
class UserFeatures:
    """Per-job user features, aligned with the jobs of a batch."""

    categorical: Mapping[str, NDArray[np.uint64]]
    dense: Mapping[str, NDArray[np.float32]]

    def __post_init__(self) -> None:
        sizes = {a.size for a in self.categorical.values()} | {a.size for a in self.dense.values()}
        if len(sizes) > 1:
            raise InputError(f"user feature columns differ in length: {sorted(sizes)}")
        for name, col in self.categorical.items():
            _frozen(col, np.uint64, f"user categorical {name!r}", None)
        for name, values in self.dense.items():
            _frozen(values, np.float32, f"user dense {name!r}", None)

    @staticmethod
    def from_raw(
        categorical: Mapping[str, Sequence[str | None]],
        dense: Mapping[str, Sequence[float | None]],
    ) -> UserFeatures:
        """Hash raw string columns (None = missing) and convert numeric ones (None -> NaN)."""
        return UserFeatures(
            categorical={k: hash_distinct(v) for k, v in categorical.items()},
            dense={k: _dense_column(v) for k, v in dense.items()},
        )

    def take(self, rows: NDArray[np.intp]) -> UserFeatures:
        """The features of ``rows`` (e.g. one row per job, gathered from a user table)."""
        return UserFeatures(
            categorical={k: v[rows] for k, v in self.categorical.items()},
            dense={k: v[rows] for k, v in self.dense.items()},
        )

    def check_rows(self, n: int) -> None:
        """Raise ``InputError`` unless every column has ``n`` rows."""
        sizes = {k: v.size for k, v in self.categorical.items()}
        sizes.update((k, v.size) for k, v in self.dense.items())
        for name, size in sizes.items():
            if size != n:
                raise InputError(f"user column {name!r} has {size} rows for {n} jobs")


@dataclass(frozen=True, slots=True)
class ItemTable:
    """Items keyed by id: hashed categorical columns and dense columns, one row per id."""

    ids: NDArray[np.int64]
    categorical: Mapping[str, NDArray[np.uint64]]
    dense: Mapping[str, NDArray[np.float32]]
    token: int
    index: ItemIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = _frozen(self.ids, np.int64, "item ids", None).size
        if n > 1 and not bool(np.all(self.ids[1:] > self.ids[:-1])):
            raise InputError("item ids must be sorted ascending and unique")
        for name, col in self.categorical.items():
            _frozen(col, np.uint64, f"item categorical {name!r}", n)
        for name, values in self.dense.items():
            _frozen(values, np.float32, f"item dense {name!r}", n)
        object.__setattr__(self, "index", ItemIndex(self.ids))

    def __len__(self) -> int:
        return int(self.ids.size)

    @staticmethod
    def from_raw(
        ids: Sequence[int] | NDArray[np.int64],
        categorical: Mapping[str, Sequence[str | None]],
        dense: Mapping[str, Sequence[float | None]],
        token: int | None = None,
    ) -> ItemTable:
        """Build a table from raw columns: hashes strings, sorts by id, rejects duplicate ids."""
        return ItemTable.from_columns(
            np.asarray(ids, dtype=np.int64),
            {k: hash_distinct(v) for k, v in categorical.items()},
            {k: _dense_column(v) for k, v in dense.items()},
            token,
        )

    @staticmethod
    def from_columns(
        ids: NDArray[np.int64],
        categorical: Mapping[str, NDArray[np.uint64]],
        dense: Mapping[str, NDArray[np.float32]],
        token: int | None = None,
    ) -> ItemTable:
        """Build a table from columns already hashed (value hashes, 0 = missing) and float32
        dense columns in any id order: sorts by id (no copy when already sorted), rejects
        duplicate ids. Feature snapshots hash each distinct value once and come here."""
        raw_ids = np.asarray(ids, dtype=np.int64)
        n = raw_ids.size
        if n < 2 or bool(np.all(raw_ids[1:] > raw_ids[:-1])):
            order = None
            sorted_ids = raw_ids
        else:
            order = np.argsort(raw_ids)  # ids must be unique: stability cannot matter
            sorted_ids = raw_ids[order]
            if not bool(np.all(sorted_ids[1:] != sorted_ids[:-1])):
                dupes = np.unique(sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]])
                raise InputError(f"duplicate item ids, e.g. {dupes[:5].tolist()}")
        cat = {k: _reorder(v, order, k, n) for k, v in categorical.items()}
        den = {k: _reorder(v, order, k, n) for k, v in dense.items()}
        if token is None:
            token = content_token(sorted_ids, cat, den)
        return ItemTable(ids=sorted_ids, categorical=cat, dense=den, token=token)


def _reorder(
    column: NDArray[Any], order: NDArray[np.intp] | None, name: str, n: int
) -> NDArray[Any]:
    if column.size != n:
        raise InputError(f"item column {name!r} has {column.size} rows for {n} ids")
    return column if order is None else column[order]


def hash_distinct(values: Sequence[str | None]) -> NDArray[np.uint64]:
    """Value hashes of a string column (``None`` -> 0), hashing each distinct string once.

    Feature columns repeat a small vocabulary over many rows: numbering the distinct values with
    one dict pass and hashing only those is several times cheaper than hashing every row, and
    gives the same hashes (``hash_optional_strings``).
    """
    codes: dict[str | None, int] = {None: 0}
    rows = np.fromiter(
        (codes.setdefault(v, len(codes)) for v in values), dtype=np.intp, count=len(values)
    )
    table = np.zeros(len(codes), dtype=np.uint64)
    if len(codes) > 1:
        table[1:] = hash_strings([v for v in codes if v is not None])
    return table[rows]


def content_token(
    ids: NDArray[np.int64],
    categorical: Mapping[str, NDArray[np.uint64]],
    dense: Mapping[str, NDArray[np.float32]],
) -> int:
    """A 63-bit digest of an item table's content: equal content gives an equal token."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.ascontiguousarray(ids).tobytes())
    for kind, columns in (("c", categorical), ("d", dense)):
        for name in sorted(columns):
            digest.update(f"\0{kind}:{name}\0".encode())
            digest.update(np.ascontiguousarray(columns[name]).tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1
