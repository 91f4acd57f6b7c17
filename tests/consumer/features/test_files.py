"""The embedded file feature store: CSV format, typing by header, missing values, lookups."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from consumer.errors import ConfigError
from consumer.features.files import FileFeatureStore, read_entity_csv, write_entity_csv
from consumer.features.source import InMemoryFeatureSource
from scoring.features import ItemTable
from scoring.hashing import hash_strings


def test_csv_round_trip_types_columns_by_header(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    write_entity_csv(
        path, "item_id", np.array([30, 10, 20], np.int64),
        {"category": ["shoes", None, "hats"]}, {"price": [1.5, 2.0, None]},
    )  # fmt: skip
    assert path.read_text().splitlines()[0] == "item_id,category,price:float"
    table = read_entity_csv(path)
    assert table.ids.tolist() == [10, 20, 30]  # sorted by id
    assert table.categorical["category"].tolist() == [
        0, int(hash_strings(["hats"])[0]), int(hash_strings(["shoes"])[0]),
    ]  # fmt: skip
    price = table.dense["price"]
    assert price[0] == np.float32(2.0)
    assert np.isnan(price[1])
    assert price[2] == np.float32(1.5)


def test_store_returns_users_aligned_with_jobs_and_unknown_users_missing(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    write_entity_csv(users, "user_id", np.array([1, 2], np.int64), {"segment": ["a", "b"]},
                     {"age": [30.0, 40.0]})  # fmt: skip
    store = FileFeatureStore.from_files(users, None)
    features = asyncio.run(store.fetch(np.array([2, 99, 1, 2], np.int64), np.zeros(0, np.int64)))
    seg = features.users.categorical["segment"]
    a, b = (int(h) for h in hash_strings(["a", "b"]))
    assert seg.tolist() == [b, 0, a, b]
    age = features.users.dense["age"]
    assert age[0] == 40.0
    assert np.isnan(age[1])
    assert age[2] == 30.0
    assert len(features.items) == 0


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("item_id,price:float\n1,cheap\n", "line 2: .cheap. is not a number in JSON syntax"),
        ("item_id,category\nx,shoes\n", "invalid feature file"),
        ("", "cannot read feature file"),
    ],
)
def test_bad_files_are_config_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        read_entity_csv(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_entity_csv(tmp_path / "absent.csv")


def test_the_file_store_serves_features_without_an_event_loop() -> None:
    users = ItemTable.from_raw(np.array([7, 3], np.int64), {"segment": ["a", "b"]}, {})
    items = ItemTable.from_raw(np.array([1], np.int64), {}, {})
    store = FileFeatureStore(users, items)
    assert isinstance(store, InMemoryFeatureSource)
    now = store.fetch_now(np.array([3, 9], np.int64), np.array([1], np.int64))
    later = asyncio.run(store.fetch(np.array([3, 9], np.int64), np.array([1], np.int64)))
    assert now.users.categorical["segment"].tolist() == later.users.categorical["segment"].tolist()
    assert now.items is items


@pytest.mark.parametrize(
    "cell", ["0", "-0", "19.99", "-0.5", "1e-05", "1E+16", "2.5e3", "123456789012345678901234"]
)
def test_float_cells_take_json_number_syntax(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "items.csv"
    path.write_text(f"item_id,price:float\n1,{cell}\n2,\n")
    price = read_entity_csv(path).dense["price"]
    assert price[0] == np.float32(float(cell))  # nearest float64, then nearest float32
    assert np.isnan(price[1])  # empty: missing


def test_a_float_cell_beyond_float32_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,price:float\n1,3.4e38\n2,-1e39\n")
    with pytest.raises(ConfigError, match="line 3: '-1e39' is beyond float32's range"):
        read_entity_csv(path)


@pytest.mark.parametrize(
    "cell", ["1_000", "inf", "-Infinity", "nan", "NaN", " 1", "1 ", "+1", ".5", "5.", "01",
             "0x10", "1e", "1,5", "١"],
)  # fmt: skip
def test_float_cells_outside_json_syntax_are_refused_with_where(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "items.csv"
    path.write_text(f'item_id,price:float\n1,2.5\n2,"{cell}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        read_entity_csv(path)
    assert str(refused.value) == (
        f"{path}: column 'price:float', line 3: {cell!r} is not a number in JSON syntax "
        "(e.g. 19.99, -0.5, 1e-05; empty = missing)"
    )


def test_the_writer_writes_what_the_reader_reads(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    values = [0.1, 1e-05, 1e16, -0.0, float("nan"), float("inf"), None, 3.4028234663852886e38]
    write_entity_csv(path, "item_id", np.arange(len(values), dtype=np.int64), {},
                     {"x": values})  # fmt: skip
    dense = read_entity_csv(path).dense["x"]
    expected = np.array([np.nan if v is None else v for v in values], np.float32)
    expected[~np.isfinite(expected)] = np.nan  # non-finite is missing anyway: written empty
    np.testing.assert_array_equal(dense, expected)
