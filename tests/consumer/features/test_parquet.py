"""Parquet entity files: the same tables as CSV, typing by Arrow type, Feast's offline layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from consumer.errors import ConfigError
from consumer.features.files import read_entity_csv, write_entity_csv
from consumer.features.parquet import read_entity_parquet, write_entity_parquet
from scoring.hashing import hash_strings


def _hash(value: str) -> int:
    return int(hash_strings([value])[0])


def test_parquet_and_csv_of_the_same_data_give_the_same_table(tmp_path: Path) -> None:
    ids = np.array([30, 10, 20, 40], np.int64)
    categorical: dict[str, list[str | None]] = {"brand": ["acme", None, "zeta", "acme"]}
    dense: dict[str, list[float | None]] = {"price": [1.5, None, 2.25, 4.0]}
    write_entity_csv(tmp_path / "items.csv", "item_id", ids, categorical, dense)
    write_entity_parquet(tmp_path / "items.parquet", "item_id", ids, categorical, dense)
    csv = read_entity_csv(tmp_path / "items.csv")
    parquet = read_entity_parquet(tmp_path / "items.parquet")
    assert parquet.ids.tolist() == [10, 20, 30, 40]
    assert parquet.categorical["brand"].tolist() == csv.categorical["brand"].tolist()
    assert parquet.categorical["brand"].tolist() == [0, _hash("zeta"), _hash("acme"), _hash("acme")]
    np.testing.assert_array_equal(parquet.dense["price"], csv.dense["price"])
    assert parquet.token == csv.token  # same content, same token: kernel caches carry over


def test_columns_are_typed_by_arrow_type(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    table = pa.table(
        {
            "item_id": pa.array([2, 1], pa.int32()),
            "plain": pa.array(["a", None], pa.string()),
            "large": pa.array(["b", "c"], pa.large_string()),
            "count": pa.array([3, None], pa.int64()),
            "flag": pa.array([True, False]),
            "price:float": pa.array([1.0, 2.0], pa.float64()),
            "updated": pa.array([1, 2], pa.timestamp("ms")),
        }
    )
    pq.write_table(table, path)
    items = read_entity_parquet(path)
    assert items.ids.tolist() == [1, 2]
    assert sorted(items.categorical) == ["large", "plain"]
    assert items.categorical["plain"].tolist() == [0, _hash("a")]
    assert items.categorical["large"].tolist() == [_hash("c"), _hash("b")]
    assert sorted(items.dense) == ["count", "flag", "price"]  # the ":float" suffix is dropped
    np.testing.assert_array_equal(items.dense["count"], np.array([np.nan, 3.0], np.float32))
    np.testing.assert_array_equal(items.dense["flag"], np.array([0.0, 1.0], np.float32))


def test_row_groups_with_different_dictionaries_hash_by_value(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    values = ["x", "y", None, "z", "x", "w", "y", "v"]
    pq.write_table(
        pa.table({"item_id": pa.array(range(8), pa.int64()), "c": pa.array(values)}),
        path, row_group_size=3,
    )  # fmt: skip
    items = read_entity_parquet(path)
    assert items.categorical["c"].tolist() == [0 if v is None else _hash(v) for v in values]


def test_feast_offline_layout_keeps_each_ids_latest_event(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    table = pa.table(
        {
            "item_id": pa.array([1, 2, 1, 3, 2], pa.int64()),
            "event_timestamp": pa.array([10, 50, 30, 5, 40], pa.timestamp("s")),
            "brand": pa.array(["old", "new", "newer", "only", "stale"]),
        }
    )
    pq.write_table(table, path)
    items = read_entity_parquet(path)
    assert items.ids.tolist() == [1, 2, 3]
    assert items.categorical["brand"].tolist() == [_hash("newer"), _hash("new"), _hash("only")]


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pa.table({"id": pa.array(["a"]), "c": pa.array(["x"])}), "must be integers"),
        (pa.table({"id": pa.array([1, None], pa.int64())}), "must be integers without nulls"),
        (pa.table({"id": pa.array([1, 1], pa.int64())}), "duplicate item ids"),
        (pa.table({"id": pa.array([1]), "l": pa.array([[1, 2]])}), "not a string or a number"),
    ],
)
def test_untypable_files_are_config_errors(tmp_path: Path, table: pa.Table, match: str) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(ConfigError, match=match):
        read_entity_parquet(path)


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match="cannot read feature file"):
        read_entity_parquet(tmp_path / "junk.parquet")
    with pytest.raises(ConfigError, match="cannot read feature file"):
        read_entity_parquet(tmp_path / "missing.parquet")
