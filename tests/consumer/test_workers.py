"""Worker helpers that need no broker: per-worker config and the frozen startup heap."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import replace

import pytest

from consumer.config import Config
from consumer.workers import freeze_startup_heap, worker_config


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_startup_objects_leave_the_collectors_generations(unfrozen: None) -> None:
    gc.unfreeze()
    startup = [{"weights": list(range(10))} for _ in range(1000)]  # tracked containers
    before = gc.get_freeze_count()
    freeze_startup_heap()
    assert gc.get_freeze_count() >= before + len(startup)
    assert gc.get_count()[0] < 10  # the young generation starts empty


def test_worker_ports_are_offset_by_index_unless_any_free_port() -> None:
    config = Config()
    fixed = replace(config, server=replace(config.server, port=9500))
    assert worker_config(fixed, 2).server.port == 9502
    anywhere = replace(config, server=replace(config.server, port=0))
    assert worker_config(anywhere, 3).server.port == 0
