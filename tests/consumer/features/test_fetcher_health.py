"""The feature fetcher marks the feature store up or down with each remote fetch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.errors import FeaturesUnavailableError
from consumer.features.fetcher import FeatureFetcher
from consumer.features.source import BatchFeatures
from consumer.metrics import Metrics
from consumer.telemetry.health import DependencyState

IDS = np.arange(3, dtype=np.int64)


class ScriptedStore:
    """A remote source whose next answer a test chooses."""

    def __init__(self) -> None:
        self.answer: BatchFeatures | Exception = BatchFeatures.defaults()

    async def fetch(
        self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]
    ) -> BatchFeatures:
        await asyncio.sleep(0)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def close(self) -> None:
        return None


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(5)
    running.close()


def becomes(state: DependencyState, up: bool) -> bool:
    """The mark lands in the future's done-callback, just after waiters wake: poll briefly."""
    deadline = time.monotonic() + 5
    while state.up is not up and time.monotonic() < deadline:
        time.sleep(0.001)
    return state.up is up


def test_each_remote_fetch_marks_the_feature_store(loop: asyncio.AbstractEventLoop) -> None:
    store = ScriptedStore()
    state = DependencyState("feature_store", Metrics(CollectorRegistry()), ManualClock())
    fetcher = FeatureFetcher(store, loop, health=state)
    healthy = BatchFeatures.defaults()
    store.answer = BatchFeatures(healthy.users, healthy.items, degraded=False)
    fetcher.start(IDS, IDS, 1.0).result(5)
    assert becomes(state, up=True)
    store.answer = BatchFeatures.defaults()  # "defaults" policy: the store did not answer
    fetcher.start(IDS, IDS, 1.0).result(5)
    assert becomes(state, up=False)
    assert "scored with defaults" in state.reason
    store.answer = BatchFeatures(healthy.users, healthy.items, degraded=False)
    fetcher.start(IDS, IDS, 1.0).result(5)
    assert becomes(state, up=True)
    store.answer = FeaturesUnavailableError("circuit breaker open")  # "pause" policy
    with pytest.raises(FeaturesUnavailableError):
        fetcher.start(IDS, IDS, 1.0).result(5)
    assert becomes(state, up=False)
    assert state.reason == "circuit breaker open"
