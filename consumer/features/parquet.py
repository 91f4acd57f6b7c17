"""Entity tables from Parquet: what feature pipelines and Feast's offline store write.

Columns are typed by their Arrow type, not by name:

- the first column is the entity id (integers, no nulls);
- string columns (plain or dictionary-encoded) are categorical: each distinct value is hashed once
  (``scoring.hashing``, the same hashes as the CSV store) and every row takes its value's hash by
  index, null -> 0 (missing); they are read dictionary-encoded, so a million rows of a 20,000-value
  vocabulary cost 20,000 hashes and one integer gather;
- numeric and boolean columns are dense (float32), null -> NaN (missing: the model's default);
- timestamp and date columns are metadata, not features. When an id repeats and the file has an
  ``event_timestamp`` column (Feast's offline layout: one row per entity and event), the latest row
  of each id is kept; any other repeated id is an error.

A ``:float`` suffix on a column name (a CSV header converted as is) is dropped. Anything the reader
cannot type is a ``ConfigError`` naming the file and column: a snapshot is either loaded whole or
not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from consumer.errors import ConfigError
from scoring.errors import InputError
from scoring.features import ItemTable
from scoring.hashing import hash_strings

EVENT_TIMESTAMP: Final = "event_timestamp"
DENSE_SUFFIX: Final = ":float"


def _is_string(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_string(kind.value_type)
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _is_number(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


def _is_time(kind: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(kind) or pa.types.is_date(kind))


def _feature_name(column: str) -> str:
    return column[: -len(DENSE_SUFFIX)] if column.endswith(DENSE_SUFFIX) else column


def hashed_column(column: Any) -> NDArray[np.uint64]:
    """Value hashes of an Arrow string column (chunked, plain or dictionary): each distinct
    value hashed once, null -> 0."""
    chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    if not pa.types.is_dictionary(chunked.type):
        chunked = pc.dictionary_encode(chunked)
    encoded = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    values = encoded.dictionary.to_pylist()
    # slot len(values) is "missing": null indices and null dictionary entries both land on 0
    table = np.zeros(len(values) + 1, dtype=np.uint64)
    present = [i for i, v in enumerate(values) if v is not None]
    if present:
        table[present] = hash_strings([values[i] for i in present])
    rows = np.asarray(pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False))
    hashed: NDArray[np.uint64] = table[rows]
    return hashed


def dense_column(column: Any) -> NDArray[np.float32]:
    """An Arrow numeric column as float32, null -> NaN."""
    as_float = pc.cast(column, pa.float32(), safe=False)  # a no-op for float32 columns
    filled = pc.fill_null(as_float, np.float32(np.nan))
    return np.asarray(filled.to_numpy(), dtype=np.float32)


def _ids(table: pa.Table, path: Path) -> NDArray[np.int64]:
    column = table.column(0)
    if not pa.types.is_integer(column.type) or column.null_count:
        name = table.schema.names[0]
        raise ConfigError(f"id column {name!r} must be integers without nulls", key=str(path))
    return np.asarray(column.to_numpy(), dtype=np.int64)


def _latest_rows(ids: NDArray[np.int64], stamps: NDArray[np.int64]) -> NDArray[np.intp] | None:
    """Rows holding each id's latest event (ties: the later row), or None if ids are unique."""
    order = np.lexsort((np.arange(ids.size), stamps, ids))
    ordered = ids[order]
    last = np.ones(ids.size, dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    return None if bool(last.all()) else np.sort(order[last])


def read_entity_parquet(path: Path, token: int | None = None) -> ItemTable:
    """Load a Parquet entity file (users or items) into a hashed, id-sorted table."""
    try:
        schema = pq.read_schema(path)
        strings = [
            f.name for f in schema if _is_string(f.type) and not pa.types.is_dictionary(f.type)
        ]
        table = pq.read_table(path, read_dictionary=strings)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"cannot read feature file: {exc}", key=str(path)) from exc
    if table.num_columns < 1:
        raise ConfigError("feature file has no id column", key=str(path))
    ids = _ids(table, path)
    keep = _dedupe_rows(table, ids)
    if keep is not None:
        ids = ids[keep]
    categorical: dict[str, NDArray[np.uint64]] = {}
    dense: dict[str, NDArray[np.float32]] = {}
    for field in schema.remove(0):
        name, column = _feature_name(field.name), table.column(field.name)
        if keep is not None:
            column = column.take(pa.array(keep))
        if _is_string(field.type):
            categorical[name] = hashed_column(column)
        elif _is_number(field.type):
            dense[name] = dense_column(column)
        elif not _is_time(field.type):
            reason = f"column {field.name!r} has type {field.type}: not a string or a number"
            raise ConfigError(reason, key=str(path))
    return _table(path, ids, categorical, dense, token)


def _dedupe_rows(table: pa.Table, ids: NDArray[np.int64]) -> NDArray[np.intp] | None:
    if EVENT_TIMESTAMP not in table.schema.names:
        return None
    stamps = pc.cast(table.column(EVENT_TIMESTAMP), pa.int64()).to_numpy(zero_copy_only=False)
    return _latest_rows(ids, np.asarray(stamps, dtype=np.int64))


def _table(
    path: Path,
    ids: NDArray[np.int64],
    categorical: Mapping[str, NDArray[np.uint64]],
    dense: Mapping[str, NDArray[np.float32]],
    token: int | None,
) -> ItemTable:
    try:
        return ItemTable.from_columns(ids, categorical, dense, token)
    except InputError as exc:
        raise ConfigError(f"invalid feature file: {exc}", key=str(path)) from exc


def write_entity_parquet(
    path: Path,
    id_column: str,
    ids: NDArray[np.int64],
    categorical: Mapping[str, Any],
    dense: Mapping[str, Any],
) -> None:
    """Write an entity file in the layout `read_entity_parquet` reads (demo, benchmarks, tests).

    Categorical columns are string sequences or Arrow string arrays (None = missing), dense
    columns float sequences or arrays (None or NaN = missing); strings are stored
    dictionary-encoded, as feature pipelines usually write them.
    """
    columns: dict[str, Any] = {id_column: pa.array(np.asarray(ids, dtype=np.int64))}
    for name, values in categorical.items():
        array = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
        columns[name] = pc.dictionary_encode(array) if pa.types.is_string(array.type) else array
    for name, values in dense.items():
        if isinstance(values, np.ndarray):
            x = values.astype(np.float32)
        else:
            x = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        columns[name] = pa.array(x, mask=np.isnan(x))
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table(columns), staging)
    staging.replace(path)  # readers (and the snapshot watcher) never see a half-written file
