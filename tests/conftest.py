"""Shared fixtures: the Kafka broker (local or external via KAFKA_BOOTSTRAP) and unique names.

Tests that touch a broker carry ``@pytest.mark.kafka``. ``kafka_bootstrap`` is one broker per
session; tests that stop or kill a broker take ``local_kafka``, a dedicated one, instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumer.devtools.local_kafka import LocalKafka, default_cache_dir, kafka_cluster


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a broker shared by the whole session."""
    with kafka_cluster(default_cache_dir(os.environ), os.environ.get("KAFKA_BOOTSTRAP")) as address:
        yield address


@pytest.fixture
def local_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A running broker owned by one test, free to restart or kill; its log stays in tmp_path."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        pytest.skip("KAFKA_BOOTSTRAP is set: restart/kill tests need a broker of their own")
    with LocalKafka(default_cache_dir(os.environ), data_dir=tmp_path / "kafka") as kafka:
        yield kafka


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Make topic and group names that no other test (or earlier run) uses."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


SYSTEM_FIXTURES = frozenset({"promtool", "prometheus_bin"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that take a system binary's fixture carry the ``system`` marker (``make unit`` skips
    them), so the marker cannot drift from what a test really needs."""
    for item in items:
        if SYSTEM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.system)
