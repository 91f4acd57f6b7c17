"""User features and item tables: raw conversion, ordering, validation, content tokens."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.errors import InputError
from scoring.features import ItemTable, UserFeatures, hash_distinct
from scoring.hashing import hash_optional_strings, hash_string


def test_item_table_from_raw_sorts_and_hashes() -> None:
    table = ItemTable.from_raw(
        [30, 10, 20], {"brand": ["c", None, "b"]}, {"price": [3.0, 1.0, None]}
    )
    assert table.ids.tolist() == [10, 20, 30]
    assert table.categorical["brand"].tolist() == [0, hash_string("b"), hash_string("c")]
    np.testing.assert_array_equal(table.dense["price"], np.array([1.0, np.nan, 3.0], np.float32))
    assert table.index.lookup(np.array([20, 25], dtype=np.int64)).tolist() == [1, 3]


def test_token_identifies_content() -> None:
    a = ItemTable.from_raw([1, 2], {"brand": ["x", "y"]}, {})
    b = ItemTable.from_raw([2, 1], {"brand": ["y", "x"]}, {})
    c = ItemTable.from_raw([1, 2], {"brand": ["x", "z"]}, {})
    assert a.token == b.token
    assert a.token != c.token
    assert ItemTable.from_raw([1], {}, {}, token=5).token == 5


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(InputError, match=r"duplicate item ids, e\.g\. \[2\]"):
        ItemTable.from_raw([2, 1, 2], {}, {})


def test_unsorted_ids_are_rejected() -> None:
    with pytest.raises(InputError, match="sorted"):
        ItemTable(np.array([2, 1], np.int64), {}, {}, token=0)


def test_column_length_must_match_ids() -> None:
    with pytest.raises(InputError, match="2 rows for 3 ids"):
        ItemTable.from_raw([1, 2, 3], {"brand": ["a", "b"]}, {})


def test_user_features_from_raw_and_take() -> None:
    users = UserFeatures.from_raw({"segment": ["a", None, "c"]}, {"age": [1.0, None, 3.0]})
    picked = users.take(np.array([2, 1], dtype=np.intp))
    assert picked.categorical["segment"].tolist() == [hash_string("c"), 0]
    assert picked.dense["age"][0] == 3.0
    assert np.isnan(picked.dense["age"][1])


def test_user_columns_must_agree_in_length() -> None:
    with pytest.raises(InputError, match="differ in length"):
        UserFeatures({"a": np.zeros(2, np.uint64)}, {"b": np.zeros(3, np.float32)})


def test_user_columns_must_have_the_right_dtype() -> None:
    with pytest.raises(InputError, match="uint64"):
        UserFeatures({"a": np.zeros(2, np.int64)}, {})


def test_hash_distinct_equals_hashing_every_row() -> None:
    values = ["b", None, "a", "b", "", "héllo", None, "a"]
    assert hash_distinct(values).tolist() == hash_optional_strings(values).tolist()
    assert hash_distinct([]).tolist() == []
    assert hash_distinct([None, None]).tolist() == [0, 0]


def test_from_columns_sorts_prehashed_columns_and_matches_from_raw() -> None:
    raw = ItemTable.from_raw([30, 10, 20], {"brand": ["c", None, "b"]}, {"price": [3.0, 1.0, None]})
    hashed = hash_optional_strings(["c", None, "b"])
    price = np.array([3.0, 1.0, np.nan], np.float32)
    table = ItemTable.from_columns(np.array([30, 10, 20], np.int64), {"brand": hashed},
                                   {"price": price})  # fmt: skip
    assert table.ids.tolist() == [10, 20, 30]
    assert table.categorical["brand"].tolist() == raw.categorical["brand"].tolist()
    np.testing.assert_array_equal(table.dense["price"], raw.dense["price"])
    assert table.token == raw.token


def test_from_columns_keeps_sorted_input_and_rejects_bad_columns() -> None:
    ids = np.array([1, 2, 3], np.int64)
    col = np.array([7, 8, 9], np.uint64)
    table = ItemTable.from_columns(ids, {"c": col}, {})
    assert table.categorical["c"] is col  # already in id order: not copied
    with pytest.raises(InputError, match="duplicate item ids"):
        ItemTable.from_columns(np.array([3, 1, 3], np.int64), {}, {})
    with pytest.raises(InputError, match="has 2 rows for 3 ids"):
        ItemTable.from_columns(ids, {"c": np.array([1, 2], np.uint64)}, {})
