r"""The embedded feature store: user and item features held in memory, loaded from CSV files.

The first column of each file is the entity id; a column named ``name:float`` is a dense numeric
feature, any other column is categorical (kept as its hashed string value). Empty cells are
missing values: the model's defaults apply. A ``:float`` cell is a number in JSON's syntax
(RFC 8259: ``-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?``), the one parsers of every language
agree on; Python's wider ``float()`` forms (``1_000``, ``inf``, ``nan``, `` 1``, ``+1``, ``.5``)
are refused with the column, row and value, and so is a number beyond float32's range. The
store hands out its whole item table, whose
stable token lets the kernel cache per-item partial scores.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from consumer.errors import ConfigError
from consumer.features.source import BatchFeatures
from scoring.features import ItemTable, UserFeatures

DENSE_SUFFIX = ":float"
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
FLOAT32_MAX = float(np.finfo(np.float32).max)
_CELL = re.compile(rf"(?:{JSON_NUMBER.pattern})?")  # a number, or empty (missing)


def read_entity_csv(path: Path, token: int | None = None) -> ItemTable:
    """Load an entity file (users or items) into a hashed, id-sorted table."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows = list(reader)
    except (OSError, StopIteration, csv.Error) as exc:
        raise ConfigError(f"cannot read feature file: {exc}", key=str(path)) from exc
    if len(header) < 1:
        raise ConfigError("feature file has no id column", key=str(path))
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    try:
        ids = np.array(columns[0], dtype=np.int64)
        categorical: dict[str, list[str | None]] = {}
        dense: dict[str, list[float | None]] = {}
        for name, values in zip(header[1:], columns[1:], strict=True):
            if name.endswith(DENSE_SUFFIX):
                _check_numbers(path, name, values)
                dense[name[: -len(DENSE_SUFFIX)]] = _floats(path, name, values)
            else:
                categorical[name] = [v or None for v in values]
        return ItemTable.from_raw(ids, categorical, dense, token=token)
    except ValueError as exc:
        raise ConfigError(f"invalid feature file: {exc}", key=str(path)) from exc


def _check_numbers(path: Path, column: str, values: tuple[str, ...]) -> None:
    """Every non-empty cell a JSON number, else a `ConfigError` naming the first bad one."""
    if all(map(_CELL.fullmatch, values)):  # C-level pass; a match object is always true
        return
    for row, value in enumerate(values):
        if _CELL.fullmatch(value) is None:
            raise ConfigError(
                f"column {column!r}, line {row + 2}: {value!r} is not a number in JSON syntax "
                "(e.g. 19.99, -0.5, 1e-05; empty = missing)",
                key=str(path),
            )


def _floats(path: Path, column: str, values: tuple[str, ...]) -> list[float | None]:
    """The cells as floats (empty: None); a value float32 cannot hold is a `ConfigError`."""
    floats = [float(v) if v else None for v in values]
    if any(x is not None and not -FLOAT32_MAX <= x <= FLOAT32_MAX for x in floats):
        row = next(i for i, x in enumerate(floats) if x is not None and abs(x) > FLOAT32_MAX)
        raise ConfigError(
            f"column {column!r}, line {row + 2}: {values[row]!r} is beyond float32's range",
            key=str(path),
        )
    return floats


def write_entity_csv(
    path: Path,
    id_column: str,
    ids: NDArray[np.int64],
    categorical: dict[str, list[str | None]],
    dense: dict[str, list[float | None]],
) -> None:
    """Write an entity file in the format `read_entity_csv` reads (used by the demo)."""
    header = [id_column, *categorical, *(f"{name}{DENSE_SUFFIX}" for name in dense)]
    cols: list[list[str]] = [[str(int(i)) for i in ids]]
    cols += [[v or "" for v in values] for values in categorical.values()]
    cols += [[_number(v) for v in values] for values in dense.values()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(*cols, strict=True))


def _number(value: float | None) -> str:
    """A cell `read_entity_csv` reads back to the same float; non-finite (missing anyway) -> ""."""
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def gather_users(table: ItemTable, user_ids: NDArray[np.int64]) -> UserFeatures:
    """Rows of `table` for each user id; unknown users get missing values."""
    if table.ids.size == 0:
        return UserFeatures(categorical={}, dense={})
    rows = np.searchsorted(table.ids, user_ids)
    np.minimum(rows, table.ids.size - 1, out=rows)
    found = table.ids[rows] == user_ids
    categorical = {k: np.where(found, v[rows], np.uint64(0)) for k, v in table.categorical.items()}
    dense = {
        k: np.where(found, v[rows], np.float32(np.nan)).astype(np.float32)
        for k, v in table.dense.items()
    }
    return UserFeatures(categorical=categorical, dense=dense)


class FileFeatureStore:
    """The embedded default: user and item features held in memory, loaded from CSV files."""

    def __init__(self, users: ItemTable, items: ItemTable) -> None:
        self._users = users
        self._items = items

    @classmethod
    def from_files(cls, users_file: Path | None, items_file: Path | None) -> FileFeatureStore:
        empty = ItemTable.from_raw(np.zeros(0, np.int64), {}, {})
        users = read_entity_csv(users_file) if users_file else empty
        items = read_entity_csv(items_file) if items_file else empty
        return cls(users, items)

    @property
    def users(self) -> ItemTable:
        return self._users

    @property
    def items(self) -> ItemTable:
        return self._items

    def fetch_now(self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]) -> BatchFeatures:
        return BatchFeatures(users=gather_users(self._users, user_ids), items=self._items)

    async def fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> BatchFeatures:
        return self.fetch_now(user_ids, item_ids)

    async def close(self) -> None:
        return None
