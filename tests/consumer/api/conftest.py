"""Fixtures of the ranking API's tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumer.devtools.demo_data import DemoData, write_demo_data
from tests.consumer.api.support import make_api


@pytest.fixture(scope="package")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("api")
    return write_demo_data(root, n_items=500, n_users=50, seed=5, hash_bits=14)


@pytest.fixture
async def client(data: DemoData) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(make_api(data).build_app(ops=True))) as c:
        yield c


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The listener's tests run on asyncio's loop and on uvloop's, which `serve` runs."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.path.name == "test_connections.py":
        with suppress(ImportError):
            import uvloop

            factories["uvloop"] = uvloop.new_event_loop
    return factories
