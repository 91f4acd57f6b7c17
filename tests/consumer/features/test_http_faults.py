"""HttpFeatureSource against a fault-injecting local server: policies, retries, counters."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import FeatureConfig
from consumer.errors import FeaturesUnavailableError
from consumer.features.http import HttpFeatureSource
from consumer.metrics import Metrics
from scoring.hashing import hash_strings
from tests.feast.fake_server import UNKNOWN_FROM, FakeFeast, Fault

SECRET = "s3cret-token-value"


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeast]:
    server = FakeFeast()
    await server.start()
    yield server
    await server.stop()


def make_source(
    fake: FakeFeast,
    registry: CollectorRegistry | Metrics,
    clock: ManualClock | None = None,
    **kw: Any,
) -> HttpFeatureSource:
    config = FeatureConfig(
        source="http", url=fake.url, user_features="", item_features="items:category,items:price",
        timeout_ms=2000, retries=2,
    )  # fmt: skip
    metrics = registry if isinstance(registry, Metrics) else Metrics(registry)
    return HttpFeatureSource.from_config(replace(config, **kw), metrics, clock or ManualClock())


def errors(registry: CollectorRegistry, kind: str) -> float:
    return registry.get_sample_value("stream_scorer_feature_errors_total", {"kind": kind}) or 0.0


def sample(registry: CollectorRegistry, name: str, entity: str = "item") -> float:
    return registry.get_sample_value(f"stream_scorer_{name}_total", {"entity": entity}) or 0.0


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def categories(items: list[int]) -> list[int]:
    return [int(h) for h in hash_strings([f"cat-{i % 7}" for i in items])]


async def test_dedupes_chunks_and_bounds_concurrency(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(
        fake, registry, user_features="users:segment", max_rows_per_request=100, max_concurrency=3
    )
    fake.faults.extend(Fault(delay_s=0.05) for _ in range(20))
    candidates = np.concatenate([np.arange(1, 1001), np.arange(500, 1001)]).astype(np.int64)
    features = await source.fetch(ids(5, 5, 7, 9), candidates)
    await source.close()
    item_requests = [s for s in fake.seen if s.features[0].startswith("items")]
    assert len(item_requests) == 10
    assert all(len(s.ids) <= 100 for s in item_requests)
    assert sorted(i for s in item_requests for i in s.ids) == list(range(1, 1001))
    user_requests = [s for s in fake.seen if s.features == ["users:segment"]]
    assert [s.ids for s in user_requests] == [[5, 7, 9]]  # deduplicated
    assert 2 <= fake.max_in_flight <= 3
    table = features.items
    assert table.ids.tolist() == list(range(1, 1001))
    assert table.categorical["category"].tolist() == categories(list(range(1, 1001)))
    np.testing.assert_array_equal(
        table.dense["price"], (np.arange(1, 1001) / 10).astype(np.float32)
    )
    segment = features.users.categorical["segment"].tolist()
    assert segment == hash_strings(["seg-2", "seg-2", "seg-1", "seg-0"]).tolist()
    assert features.degraded is False
    assert sample(registry, "feature_rows_requested") == 1000
    assert sample(registry, "feature_rows_requested", "user") == 3


async def test_latency_beyond_the_deadline_scores_with_defaults(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry, timeout_ms=100)
    fake.faults.append(Fault(delay_s=1.0))
    started = time.monotonic()
    features = await source.fetch(ids(1), ids(1, 2))
    elapsed = time.monotonic() - started
    await source.close()
    assert features.degraded is True
    assert len(features.items) == 0
    assert errors(registry, "timeout") == 1
    assert elapsed < 0.9  # returned at the deadline, not when the server answered


async def test_pause_policy_raises_for_the_loop_owner(fake: FakeFeast) -> None:
    source = make_source(fake, CollectorRegistry(), timeout_ms=100, unavailable_policy="pause")
    fake.faults.append(Fault(delay_s=1.0))
    with pytest.raises(FeaturesUnavailableError, match="timeout"):
        await source.fetch(ids(1), ids(1, 2))
    await source.close()


async def test_5xx_is_retried_until_success(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry)
    fake.faults.extend([Fault(status=500), Fault(status=503)])
    features = await source.fetch(ids(1), ids(3, 4))
    await source.close()
    assert features.degraded is False
    assert features.items.categorical["category"].tolist() == categories([3, 4])
    assert errors(registry, "http_5xx") == 2
    assert len(fake.seen) == 3


async def test_persistent_5xx_exhausts_retries_then_defaults(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry, retries=2)
    fake.faults.extend(Fault(status=500, body=b"boom") for _ in range(5))
    features = await source.fetch(ids(1), ids(3, 4))
    await source.close()
    assert features.degraded is True
    assert len(fake.seen) == 3  # one try and two retries
    assert errors(registry, "http_5xx") == 3


async def test_429_waits_for_retry_after(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry)
    fake.faults.append(Fault(status=429, headers={"Retry-After": "0.3"}))
    started = time.monotonic()
    features = await source.fetch(ids(1), ids(3))
    elapsed = time.monotonic() - started
    await source.close()
    assert features.degraded is False
    assert errors(registry, "http_429") == 1
    assert elapsed >= 0.3


async def test_429_beyond_the_deadline_fails_at_once(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry, timeout_ms=500, unavailable_policy="pause")
    fake.faults.append(Fault(status=429, headers={"Retry-After": "30"}))
    with pytest.raises(FeaturesUnavailableError, match="no time left to retry"):
        await source.fetch(ids(1), ids(3))
    await source.close()
    assert len(fake.seen) == 1
    assert errors(registry, "http_429") == 1


async def test_401_rereads_the_token_file_and_retries_once(fake: FakeFeast, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-a\n")
    fake.token = "tok-a"
    registry = CollectorRegistry()
    source = make_source(fake, registry, token_file=str(token_file))
    assert (await source.fetch(ids(1), ids(3))).degraded is False
    # the token rotates in place within the same mtime tick: only the 401 reveals it
    stat = token_file.stat()
    fake.token = "tok-b"
    with token_file.open("r+") as handle:
        handle.write("tok-b\n")
    os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    features = await source.fetch(ids(1), ids(4))
    await source.close()
    assert features.degraded is False
    assert [s.authorization for s in fake.seen] == ["Bearer tok-a", "Bearer tok-a", "Bearer tok-b"]
    assert errors(registry, "unauthorized") == 1


async def test_401_with_an_unchanged_token_is_final_and_never_leaks_it(
    fake: FakeFeast, caplog: pytest.LogCaptureFixture
) -> None:
    fake.token = "another-token"
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    source = make_source(fake, metrics, token=SECRET, unavailable_policy="pause")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FeaturesUnavailableError) as raised:
        await source.fetch(ids(1), ids(3))
    fake.faults.append(Fault(status=500, body=f"echo: Bearer {SECRET}".encode()))
    fake.token = SECRET
    source_defaults = make_source(fake, metrics, token=SECRET, retries=0)
    degraded = await source_defaults.fetch(ids(1), ids(3))
    await source.close()
    await source_defaults.close()
    assert degraded.degraded is True
    assert len(fake.seen) == 2
    assert fake.seen[0].authorization == f"Bearer {SECRET}"
    assert "401" in str(raised.value)
    texts = [str(raised.value), repr(raised.value), repr(source), caplog.text]
    texts += [repr(registry.collect())]
    assert caplog.text  # the failures were logged...
    assert all(SECRET not in text for text in texts)  # ...without the token


async def test_malformed_json_is_an_error_not_a_crash(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry, unavailable_policy="pause")
    fake.faults.append(Fault(body=b'{"metadata": {"feature_names": ['))
    with pytest.raises(FeaturesUnavailableError, match="malformed"):
        await source.fetch(ids(1), ids(3))
    await source.close()
    assert errors(registry, "malformed") == 1
    assert len(fake.seen) == 1  # not retried


async def test_missing_column_names_the_column(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    source = make_source(fake, metrics)
    fake.faults.append(Fault(drop="items__price"))
    features = await source.fetch(ids(1), ids(3))
    assert features.degraded is True
    source_pause = make_source(fake, metrics, unavailable_policy="pause")
    fake.faults.append(Fault(drop="items__price"))
    with pytest.raises(FeaturesUnavailableError, match="items__price"):
        await source_pause.fetch(ids(1), ids(3))
    await source.close()
    await source_pause.close()
    assert errors(registry, "malformed") == 2


async def test_connection_reset_is_retried(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry)
    fake.faults.append(Fault(reset=True))
    features = await source.fetch(ids(1), ids(3, 5))
    fake.faults.extend(Fault(reset=True) for _ in range(3))
    failed = await source.fetch(ids(1), ids(6))
    await source.close()
    assert features.degraded is False
    assert features.items.categorical["category"].tolist() == categories([3, 5])
    assert failed.degraded is True
    assert errors(registry, "connection") == 4


async def test_breaker_opens_then_probes_after_the_reset_time(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    clock = ManualClock()
    source = make_source(fake, registry, clock, retries=0, breaker_failures=2, breaker_reset_s=10)
    gauge = "stream_scorer_feature_breaker_open"
    fake.faults.extend([Fault(status=500), Fault(status=500)])
    for item in (3, 4):
        assert (await source.fetch(ids(1), ids(item))).degraded is True
    assert registry.get_sample_value(gauge) == 1
    assert (await source.fetch(ids(1), ids(5))).degraded is True
    assert len(fake.seen) == 2  # refused without a request
    assert errors(registry, "breaker_open") == 1
    assert source.breaker.retry_in() == 10.0
    clock.advance(10)
    probe = await source.fetch(ids(1), ids(5))
    await source.close()
    assert probe.degraded is False
    assert probe.items.categorical["category"].tolist() == categories([5])
    assert registry.get_sample_value(gauge) == 0
    assert len(fake.seen) == 3


async def test_cached_items_are_served_while_the_breaker_is_open(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry, retries=0, breaker_failures=1)
    warm = await source.fetch(ids(1), ids(3, 4))
    fake.faults.append(Fault(status=500))
    assert (await source.fetch(ids(1), ids(9))).degraded is True
    served = await source.fetch(ids(1), ids(4, 3, 4))
    await source.close()
    assert served.degraded is False
    assert served.items is warm.items  # the failed fetch changed nothing
    assert served.items.categorical["category"].tolist() == categories([3, 4])
    assert len(fake.seen) == 2


async def test_item_cache_ttl_negative_caching_and_stable_tokens(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    clock = ManualClock()
    source = make_source(fake, registry, clock, item_cache_ttl_s=60)
    unknown = UNKNOWN_FROM + 1
    first = await source.fetch(ids(1), ids(3, unknown, 3))
    again = await source.fetch(ids(1), ids(unknown, 3))
    assert len(fake.seen) == 1  # NOT_FOUND is cached too
    assert again.items is first.items  # unchanged cache: the same table, the same token
    assert first.items.categorical["category"].tolist() == [categories([3])[0], 0]
    assert np.isnan(first.items.dense["price"][1])
    assert sample(registry, "feature_missing_values") == 2
    more = await source.fetch(ids(1), ids(3, 8))
    assert more.items.token != first.items.token
    assert more.items.ids.tolist() == [3, 8, unknown]
    clock.advance(61)
    await source.fetch(ids(1), ids(unknown))
    await source.close()
    assert [s.ids for s in fake.seen] == [[3, unknown], [8], [unknown]]
    assert sample(registry, "feature_cache_hits") == 2 + 1
    assert sample(registry, "feature_cache_misses") == 2 + 1 + 1


async def test_user_cache_with_a_short_ttl(fake: FakeFeast) -> None:
    clock = ManualClock()
    registry = CollectorRegistry()
    source = make_source(
        fake, registry, clock, user_features="users:segment", item_features="", user_cache_ttl_s=5
    )
    first = await source.fetch(ids(4, 2, 4), ids(1))
    second = await source.fetch(ids(2, 4), ids(1))
    clock.advance(6)
    await source.fetch(ids(2), ids(1))
    await source.close()
    assert [s.ids for s in fake.seen] == [[2, 4], [2]]
    want = hash_strings(["seg-1", "seg-2", "seg-1"]).tolist()
    assert first.users.categorical["segment"].tolist() == want
    assert second.users.categorical["segment"].tolist() == want[1:]
    assert len(first.items) == 0  # no item features configured
    assert sample(registry, "feature_cache_hits", "user") == 2


async def test_chunks_that_arrived_are_kept_when_the_fetch_fails(fake: FakeFeast) -> None:
    registry = CollectorRegistry()
    source = make_source(fake, registry, timeout_ms=300, max_rows_per_request=2)
    fake.faults.extend([Fault(), Fault(delay_s=1.0)])
    failed = await source.fetch(ids(1), ids(1, 2, 3, 4))
    served = await source.fetch(ids(1), ids(1, 2, 3, 4))
    await source.close()
    assert failed.degraded is True
    assert served.degraded is False
    assert len(fake.seen) == 3
    assert fake.seen[2].ids == fake.seen[1].ids  # only the chunk that timed out is asked again
    assert served.items.categorical["category"].tolist() == categories([1, 2, 3, 4])
