"""The Feast wire protocol: queries, request bodies, response parsing, retry helpers."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import load_config
from consumer.errors import ConfigError
from consumer.features.breaker import backoff_s, parse_retry_after
from consumer.features.feast import FeatureQuery, FeatureStoreError, parse_response
from consumer.features.http import HttpFeatureSource
from consumer.metrics import Metrics
from consumer.wiring import build_feature_source
from scoring.hashing import hash_strings

QUERY = FeatureQuery.parse("item", "item_id", "items:category, items:price,stats:ctr")
IDS = np.array([10, 20, 30], np.int64)


def column(values: list[Any], statuses: list[str] | None = None) -> dict[str, Any]:
    return {"values": values, "statuses": statuses or ["PRESENT"] * len(values)}


def response(columns: dict[str, dict[str, Any]]) -> bytes:
    doc = {"metadata": {"feature_names": list(columns)}, "results": list(columns.values())}
    return json.dumps(doc).encode()


def good_columns() -> dict[str, dict[str, Any]]:
    # out of request order, with the entity column in the middle
    return {
        "stats__ctr": column([0.5, None, 0.25], ["PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE"]),
        "item_id": column([10, 20, 30]),
        "items__price": column([1, 2.5, None], ["PRESENT", "PRESENT", "NOT_FOUND"]),
        "items__category": column(["a", "b", None], ["PRESENT", "PRESENT", "NOT_FOUND"]),
    }


def test_query_parsing_and_request_body() -> None:
    assert QUERY.refs == ("items:category", "items:price", "stats:ctr")
    body = json.loads(QUERY.body(IDS))
    assert body == {
        "entities": {"item_id": [10, 20, 30]}, "full_feature_names": True,
        "features": ["items:category", "items:price", "stats:ctr"],
    }  # fmt: skip
    service = FeatureQuery.parse("item", "item_id", "ranking_v2")
    assert json.loads(service.body(IDS))["feature_service"] == "ranking_v2"
    assert FeatureQuery.parse("user", "user_id", "").enabled is False


@pytest.mark.parametrize(
    ("spec", "match"),
    [("a:x,b:x", "unique"), ("a:x,plain", "view:feature"), ("a:b:c", "view:feature")],
)
def test_bad_feature_references_are_config_errors(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as raised:
        FeatureQuery.parse("item", "item_id", spec)
    assert raised.value.key == "features.item_features"


def test_columns_are_read_by_name_and_statuses_honoured() -> None:
    kinds: dict[str, str] = {}
    cols, missing = parse_response(QUERY, IDS, response(good_columns()), kinds)
    assert kinds == {"category": "categorical", "price": "dense", "ctr": "dense"}
    assert cols.categorical["category"].tolist() == [*hash_strings(["a", "b"]).tolist(), 0]
    np.testing.assert_array_equal(cols.dense["price"], [1.0, 2.5, np.nan])
    # NULL_VALUE and OUTSIDE_MAX_AGE are missing even when a value came along
    np.testing.assert_array_equal(cols.dense["ctr"], [0.5, np.nan, np.nan])
    assert missing == 2 + 1 + 1


def test_feature_service_columns_take_the_bare_names() -> None:
    service = FeatureQuery.parse("item", "item_id", "svc")
    cols, _ = parse_response(service, IDS, response(good_columns()), {})
    assert sorted(cols.categorical) == ["category"]
    assert sorted(cols.dense) == ["ctr", "price"]


def test_all_missing_column_is_skipped_until_its_kind_is_known() -> None:
    columns = good_columns()
    columns["items__category"] = column([None] * 3, ["NOT_FOUND"] * 3)
    kinds: dict[str, str] = {}
    cols, missing = parse_response(QUERY, IDS, response(columns), kinds)
    assert "category" not in cols.categorical
    assert "category" not in kinds
    assert missing == 3 + 1 + 2


def broken(change: str) -> bytes:
    columns = good_columns()
    if change == "missing column":
        del columns["items__price"]
    elif change == "short values":
        columns["items__price"] = column([1.0, 2.0])
    elif change == "unknown status":
        columns["items__price"]["statuses"][0] = "WEIRD"
    elif change == "type change":
        columns["items__price"] = column(["1.0", 2.0, 3.0])
    elif change == "wrong entity":
        columns["item_id"] = column([10, 30, 20])
    elif change == "list value":
        columns["items__category"] = column([["a"], "b", "c"])
    return response(columns)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"<html>oops</html>", "not a get-online-features answer"),
        (b'{"results": []}', "not a get-online-features answer"),
        (b'{"metadata": {"feature_names": ["a"]}, "results": []}', "differ in length"),
        (broken("missing column"), r"lacks column\(s\) \['items__price'\]"),
        (broken("short values"), "'items__price' does not have 3 values"),
        (broken("unknown status"), "unknown statuses"),
        (broken("type change"), r"'items__price' \(dense\) holds \['str'\]"),
        (broken("wrong entity"), "does not echo the requested ids"),
        (broken("list value"), r"'items__category' \(dense\) holds \['list', 'str'\]"),
    ],
)
def test_malformed_responses_name_the_problem(payload: bytes, match: str) -> None:
    with pytest.raises(FeatureStoreError, match=match) as raised:
        parse_response(QUERY, IDS, payload, {"price": "dense"})
    assert raised.value.kind == "malformed"
    assert raised.value.retriable is False


def test_retry_helpers() -> None:
    rng = random.Random(1)
    delays = [backoff_s(n, rng) for n in range(8)]
    assert 0.01 <= delays[0] <= 0.02
    assert 0.02 <= delays[1] <= 0.04
    assert all(0.5 <= d <= 1.0 for d in delays[6:])  # capped
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_build_feature_source_selects_http() -> None:
    config = load_config(
        {"STREAM_SCORER__FEATURES__SOURCE": "http",
         "STREAM_SCORER__FEATURES__URL": "http://127.0.0.1:1",
         "STREAM_SCORER__FEATURES__ITEM_FEATURES": "items:category",
         "STREAM_SCORER__FEATURES__TOKEN": "hunter2-token"}
    )  # fmt: skip
    source = build_feature_source(config, Metrics(CollectorRegistry()), ManualClock())
    assert isinstance(source, HttpFeatureSource)
    assert "hunter2-token" not in repr(source)
