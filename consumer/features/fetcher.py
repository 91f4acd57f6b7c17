"""The one feature-fetch seam: "features for this batch, within this time budget".

The Kafka loop's `BatchProcessor` and the ranking API both ask a `BatchFetcher` for a batch's
features and get a `concurrent.futures.Future` back, so the caller decides when to wait (the loop
overlaps a remote fetch with the previous batch's CPU work; the API waits on a worker thread).

`FeatureFetcher` is the only sync-to-async bridge for features:

- an `InMemoryFeatureSource` (the embedded file store) is read on the calling thread and the
  future is already done: no I/O to overlap, and a hop through the event loop cost ~0.3 ms;
- any other source's coroutine runs on the event loop the fetcher is bound to (the service's
  `AsyncBridge` thread, or the API server's loop), bounded by ``asyncio.wait_for``.

A budget already spent, or a fetch that does not finish within it, fails the future with
`FeatureTimeoutError`. The fetcher never calls librdkafka and holds no per-batch state, so one
fetcher may serve several threads. Given a `Health` (the ``feature_store`` dependency state), each
remote fetch marks it: up when the store answered, down when the fetch failed, timed out or was
answered with defaults (the store unavailable under the ``defaults`` policy).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from consumer.errors import FeatureTimeoutError
from consumer.features.source import BatchFeatures, FeatureSource, InMemoryFeatureSource


class BatchFetcher(Protocol):
    """Features for one batch's users and candidates, within ``timeout_s`` seconds."""

    @property
    def remote(self) -> bool:
        """True when a fetch does I/O, so starting it early overlaps useful work."""
        ...

    def start(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64], timeout_s: float
    ) -> Future[BatchFeatures]: ...


class Health(Protocol):
    """Where remote fetches report whether the store answered (`consumer.telemetry.health`)."""

    def mark_up(self) -> bool: ...

    def mark_down(self, reason: str) -> bool: ...


class FeatureFetcher:
    """`BatchFetcher` over a `FeatureSource`; `bind` the event loop for non-memory sources."""

    def __init__(
        self,
        source: FeatureSource,
        loop: asyncio.AbstractEventLoop | None = None,
        health: Health | None = None,
    ) -> None:
        self.source = source
        self._loop = loop
        self._health = health

    @property
    def remote(self) -> bool:
        return not isinstance(self.source, InMemoryFeatureSource)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run remote fetches on ``loop`` (a fetcher created before its loop existed)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = loop

    def start(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64], timeout_s: float
    ) -> Future[BatchFeatures]:
        if timeout_s <= 0:
            return _failed(FeatureTimeoutError("the batch's deadline passed before its fetch"))
        if isinstance(self.source, InMemoryFeatureSource):
            return _now(self.source, user_ids, item_ids)
        if self._loop is None:
            raise RuntimeError("FeatureFetcher of a remote source used before bind()")
        coro = _bounded(self.source, user_ids, item_ids, timeout_s)
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        if self._health is not None:
            future.add_done_callback(self._observe)
        return future

    def _observe(self, future: Future[BatchFeatures]) -> None:
        assert self._health is not None
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._health.mark_down(str(error) or type(error).__name__)
        elif future.result().degraded:
            self._health.mark_down("the feature store did not answer: scored with defaults")
        else:
            self._health.mark_up()


async def _bounded(
    source: FeatureSource,
    user_ids: NDArray[np.int64],
    item_ids: NDArray[np.int64],
    timeout_s: float,
) -> BatchFeatures:
    try:
        return await asyncio.wait_for(source.fetch(user_ids, item_ids), timeout_s)
    except TimeoutError as exc:
        raise FeatureTimeoutError(f"features not fetched within {timeout_s:.3f}s") from exc


def _now(
    source: InMemoryFeatureSource, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
) -> Future[BatchFeatures]:
    future: Future[BatchFeatures] = Future()
    try:
        future.set_result(source.fetch_now(user_ids, item_ids))
    except Exception as exc:  # delivered through the future like an asynchronous failure
        future.set_exception(exc)
    return future


def _failed(exc: Exception) -> Future[BatchFeatures]:
    future: Future[BatchFeatures] = Future()
    future.set_exception(exc)
    return future
