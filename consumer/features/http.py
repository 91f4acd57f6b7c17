"""`HttpFeatureSource`: the `FeatureSource` backed by Feast's online feature server.

Per micro-batch: dedupe users and candidate items (``np.unique``), answer what the caches hold,
fetch the rest in one request per entity kind (split into chunks of ``max_rows_per_request``,
at most ``max_concurrency`` in flight, users and items concurrently), store the answers, and hand
back user features aligned with the jobs plus an `ItemTable` covering the candidates (a stable
snapshot of the item cache while it does not change: the kernel keeps its per-item scores).

Faults: the whole fetch is bounded by ``timeout_ms`` from the moment it is called; retries
(inside `FeastClient`) never outlive it. A fetch that fails, times out or finds the circuit
breaker open leaves the batch to ``unavailable_policy``: ``defaults`` returns
`BatchFeatures.defaults()` (degraded lists; the pipeline counts them), ``pause`` raises
`FeaturesUnavailableError` for the loop owner, who pauses consumption and retries the batch when
`breaker.retry_in()` says a probe is due. A batch the caches answer entirely needs no network and
is served even while the breaker is open. Nothing here drops a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from consumer.clock import Clock
from consumer.config import FeatureConfig
from consumer.errors import ConfigError, FeaturesUnavailableError
from consumer.features.auth import TokenSource, build_ssl_context
from consumer.features.breaker import BreakerState, CircuitBreaker
from consumer.features.cache import Columns, EntityCache
from consumer.features.feast import (
    ClientLimits,
    FeastClient,
    FeatureQuery,
    FeatureStoreError,
    gather_all,
)
from consumer.features.source import BatchFeatures
from consumer.metrics import Metrics
from consumer.security.redact import split_credentials
from scoring.features import UserFeatures

log = logging.getLogger(__name__)

USER_CACHE_ROWS = 200_000  # bound of the optional short-TTL user cache
WARM_UP_WAVE_S = 2.0  # minimum deadline of each warm-up wave (a cold server answers slowly)
_NO_IDS = np.zeros(0, np.int64)


class HttpFeatureSource:
    """Features from a Feast feature server, with item (and optional user) caches and a breaker."""

    def __init__(
        self,
        client: FeastClient,
        config: FeatureConfig,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._client = client
        self._users = FeatureQuery.parse("user", config.user_entity, config.user_features)
        self._items = FeatureQuery.parse("item", config.item_entity, config.item_features)
        self._metrics = metrics
        self._clock = clock
        self._timeout_s = config.timeout_ms / 1000
        self._wave = config.max_rows_per_request * config.max_concurrency
        self._policy = config.unavailable_policy
        self.item_cache = EntityCache(config.item_cache_ttl_s, config.item_cache_size)
        self.user_cache = (
            EntityCache(config.user_cache_ttl_s, USER_CACHE_ROWS)
            if config.user_cache_ttl_s > 0
            else None
        )
        self.breaker = CircuitBreaker(
            clock, config.breaker_failures, config.breaker_reset_s, self._breaker_changed
        )

    @classmethod
    def from_config(
        cls,
        config: FeatureConfig,
        metrics: Metrics,
        clock: Clock,
        resolve: Callable[[str], Path] = Path,
    ) -> HttpFeatureSource:
        """Build from configuration; ``resolve`` turns configured paths into files."""

        def path(value: str) -> str:
            return str(resolve(value)) if value else ""

        if split_credentials(config.url)[1] is not None and (config.token or config.token_file):
            raise ConfigError(
                "features.url carries credentials and a bearer token is configured: use one",
                key="features.url",
            )

        tokens = TokenSource(
            config.token, resolve(config.token_file) if config.token_file else None
        )
        context = build_ssl_context(
            path(config.ca_file), path(config.client_cert), path(config.client_key)
        )
        limits = ClientLimits(config.max_rows_per_request, config.max_concurrency, config.retries)
        client = FeastClient(config.url, tokens, context, limits, metrics)
        return cls(client, config, metrics, clock)

    async def fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> BatchFeatures:
        try:
            return await self._fetch(user_ids, item_ids)
        except FeaturesUnavailableError as exc:
            if self._policy == "pause":
                raise
            log.warning(
                "features unavailable, %d jobs scored with defaults: %s", user_ids.size, exc
            )
            return BatchFeatures.defaults()

    async def warm_up(self, item_ids: NDArray[np.int64]) -> int:
        """Load items into the cache ahead of traffic; returns rows cached (failures are logged).

        Waves of ``max_rows_per_request * max_concurrency`` rows, each with its own deadline.
        """
        items = np.unique(item_ids)
        todo = items[~self.item_cache.fresh(items, self._clock.monotonic())]
        loaded = 0
        loop = asyncio.get_running_loop()
        for start in range(0, todo.size if self._items.enabled else 0, self._wave):
            part = todo[start : start + self._wave]
            deadline = loop.time() + max(self._timeout_s, WARM_UP_WAVE_S)
            try:
                await self._get(
                    self._items, part, deadline, self.item_cache, self._clock.monotonic()
                )
            except FeaturesUnavailableError as exc:
                log.warning("item warm-up stopped after %d rows: %s", loaded, exc)
                break
            loaded += part.size
        self.item_cache.trim()
        return loaded

    async def close(self) -> None:
        await self._client.close()

    async def _fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> BatchFeatures:
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        users, inverse = np.unique(user_ids, return_inverse=True)
        items = np.unique(item_ids) if self._items.enabled else _NO_IDS
        now = self._clock.monotonic()
        user_miss = self._misses(self._users, self.user_cache, users, now)
        item_miss = self._misses(self._items, self.item_cache, items, now)
        user_cols = await self._remote(user_miss, item_miss, deadline, now)
        table = self.item_cache.table(items)
        self.item_cache.trim()
        if self.user_cache is not None and self._users.enabled:
            user_cols = self.user_cache.gather(users)
            self.user_cache.trim()
        return BatchFeatures(users=_aligned(user_cols, inverse), items=table)

    def _misses(
        self, query: FeatureQuery, cache: EntityCache | None, ids: NDArray[np.int64], now: float
    ) -> NDArray[np.int64]:
        if not query.enabled:
            return _NO_IDS
        if cache is None:
            return ids
        fresh = cache.fresh(ids, now)
        hits = int(np.count_nonzero(fresh))
        self._metrics.feature_cache_hits.labels(query.label).inc(hits)
        self._metrics.feature_cache_misses.labels(query.label).inc(ids.size - hits)
        return ids[~fresh]

    async def _remote(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64], deadline: float, now: float
    ) -> Columns:
        """Fetch what the caches lacked, under the breaker and the batch deadline.

        Chunks go into the caches as they arrive: what a failed fetch did get is kept. Returns
        the fetched user columns (the only copy when users are not cached).
        """
        if user_ids.size == 0 and item_ids.size == 0:
            return Columns.empty(user_ids)
        if not self.breaker.allow():
            self._metrics.feature_errors.labels("breaker_open").inc()
            wait = self.breaker.retry_in()
            raise FeaturesUnavailableError(f"circuit breaker open; next probe in {wait:.1f} s")
        try:
            async with asyncio.timeout_at(deadline):
                users, _ = await gather_all(
                    self._get(self._users, user_ids, deadline, self.user_cache, now),
                    self._get(self._items, item_ids, deadline, self.item_cache, now),
                )
        except TimeoutError as exc:
            self.breaker.record_failure()
            self._metrics.feature_errors.labels("timeout").inc()
            raise FeatureStoreError("timeout", "the batch deadline passed") from exc
        except BaseException:
            self.breaker.record_failure()  # also on cancellation: never keep the probe slot
            raise
        self.breaker.record_success()
        return users

    async def _get(
        self,
        query: FeatureQuery,
        ids: NDArray[np.int64],
        deadline: float,
        cache: EntityCache | None,
        now: float,
    ) -> Columns:
        if ids.size == 0:
            return Columns.empty(ids)
        keep = None if cache is None else (lambda cols: cache.put(cols, now))
        cols, missing = await self._client.fetch(query, ids, deadline, keep)
        self._metrics.feature_missing.labels(query.label).inc(missing)
        return cols

    def _breaker_changed(self, state: BreakerState) -> None:
        self._metrics.feature_breaker_open.set(0 if state is BreakerState.CLOSED else 1)
        log.warning("feature-store circuit breaker is now %s", state.value)

    def __repr__(self) -> str:
        return f"HttpFeatureSource({self._client!r}, breaker={self.breaker!r})"


def _aligned(cols: Columns, inverse: NDArray[np.intp]) -> UserFeatures:
    """Per-job user features from per-unique-user columns."""
    return UserFeatures(
        categorical={k: v[inverse] for k, v in cols.categorical.items()},
        dense={k: v[inverse] for k, v in cols.dense.items()},
    )
