"""EntityCache: TTL, size bound (LRU), negative caching, snapshot tokens, subsets."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.features import cache as feature_cache
from consumer.features.cache import Columns, EntityCache


def cols(ids: list[int], missing: tuple[int, ...] = ()) -> Columns:
    arr = np.array(ids, np.int64)
    cat = (arr * 10).astype(np.uint64)
    dense = (arr / 2).astype(np.float32)
    gone = np.isin(arr, missing)
    cat[gone] = 0
    dense[gone] = np.nan
    return Columns(arr, {"c": cat}, {"d": dense})


def ids(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def test_rows_expire_after_the_ttl() -> None:
    cache = EntityCache(ttl_s=10, capacity=100)
    cache.put(cols([1, 5]), now=0.0)
    assert cache.fresh(ids(1, 2, 5), now=9.9).tolist() == [True, False, True]
    assert cache.fresh(ids(1, 5), now=10.0).tolist() == [False, False]
    cache.put(cols([5]), now=10.0)  # refreshed in place
    assert cache.fresh(ids(1, 5), now=12.0).tolist() == [False, True]
    assert len(cache) == 2


def test_negative_entries_are_cached_with_missing_values() -> None:
    cache = EntityCache(ttl_s=10, capacity=100)
    cache.put(cols([3, 7], missing=(7,)), now=0.0)
    assert cache.fresh(ids(7), now=1.0).tolist() == [True]
    got = cache.gather(ids(3, 7, 9))
    assert got.categorical["c"].tolist() == [30, 0, 0]  # 9 was never cached: missing too
    assert got.dense["d"][0] == 1.5
    assert np.isnan(got.dense["d"][1:]).all()


def test_size_bound_evicts_least_recently_used() -> None:
    cache = EntityCache(ttl_s=100, capacity=3)
    cache.put(cols([1, 2, 3]), now=0.0)
    cache.fresh(ids(1), now=5.0)  # 1 is used again
    cache.put(cols([4]), now=6.0)
    assert len(cache) == 4  # nothing evicted before trim: the batch keeps its rows
    assert cache.trim() == 1
    assert cache.gather(ids(1, 2, 3, 4)).categorical["c"].tolist() == [10, 0, 30, 40]
    assert cache.fresh(ids(1, 2, 3, 4), now=7.0).tolist() == [True, False, True, True]


def test_inserts_keep_ids_sorted_and_add_columns() -> None:
    cache = EntityCache(ttl_s=100, capacity=100)
    cache.put(cols([10, 30]), now=0.0)
    extra = Columns(ids(20, 40, 5), {}, {"e": np.array([2.0, 4.0, 0.5], np.float32)})
    cache.put(Columns(extra.ids[[2, 0, 1]], {}, {"e": extra.dense["e"][[2, 0, 1]]}), now=1.0)
    table = cache.table(ids(5))
    assert table.ids.tolist() == [5, 10, 20, 30, 40]
    assert table.categorical["c"].tolist() == [0, 100, 0, 300, 0]
    np.testing.assert_array_equal(table.dense["e"], [0.5, np.nan, 2.0, np.nan, 4.0])


def test_snapshot_is_reused_until_the_cache_changes() -> None:
    cache = EntityCache(ttl_s=100, capacity=100)
    cache.put(cols([1, 2]), now=0.0)
    first = cache.table(ids(1, 2))
    cache.fresh(ids(1, 2), now=1.0)  # reads change nothing
    assert cache.table(ids(2)) is first
    cache.put(cols([2]), now=2.0)  # a refresh with equal values still makes a new table
    second = cache.table(ids(1, 2))
    assert second is not first
    assert second.token != first.token
    other = EntityCache(ttl_s=100, capacity=100)
    other.put(cols([1, 2]), now=0.0)
    assert other.table(ids(1)).token != first.token  # tokens never collide across caches


def test_large_cache_gives_a_subset_with_a_content_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feature_cache, "SNAPSHOT_MIN_ROWS", 4)
    cache = EntityCache(ttl_s=100, capacity=1000)
    cache.put(cols(list(range(100))), now=0.0)
    small = cache.table(ids(3, 4))
    again = cache.table(ids(3, 4))
    assert small.ids.tolist() == [3, 4]
    assert small.categorical["c"].tolist() == [30, 40]
    assert again.token == small.token  # equal content, equal token
    assert small.token == cols([3, 4]).table().token


def test_concat_fills_columns_a_chunk_lacks() -> None:
    a = Columns(ids(1, 2), {"c": np.array([5, 6], np.uint64)}, {})
    b = Columns(ids(3), {}, {"d": np.array([1.0], np.float32)})
    joined = Columns.concat([a, b])
    assert joined.ids.tolist() == [1, 2, 3]
    assert joined.categorical["c"].tolist() == [5, 6, 0]
    np.testing.assert_array_equal(joined.dense["d"], [np.nan, np.nan, 1.0])
