"""Ranking API authentication: bearer tokens from a re-read file, 401s, and the exposure rule."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from consumer.api.auth import TokenFile, check_exposure, is_loopback
from consumer.api.server import RankingApi
from consumer.clock import ManualClock
from consumer.config import Config
from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.errors import ConfigError
from consumer.features.fetcher import FeatureFetcher
from consumer.features.files import FileFeatureStore
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from tests.consumer.api.support import as_json, config_for, job

TOKEN = "tok-" + "a" * 40


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("api-auth")
    return write_demo_data(root, n_items=300, n_users=20, seed=3, hash_bits=12)


def make_api(data: DemoData, config: Config) -> tuple[RankingApi, Metrics]:
    models = ModelRegistry.from_directory(data.models_dir)
    metrics = Metrics(CollectorRegistry())
    store = FileFeatureStore.from_files(data.users_file, data.items_file)
    api = RankingApi.create(config, models, FeatureFetcher(store), metrics, ManualClock())
    return api, metrics


def with_tokens(data: DemoData, tokens_file: Path) -> Config:
    config = config_for(data)
    return replace(config, api=replace(config.api, tokens_file=str(tokens_file)))


@pytest.fixture
async def guarded(
    data: DemoData, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], Path, Metrics]]:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# the feed builder\n{TOKEN}\n\n")
    api, metrics = make_api(data, with_tokens(data, tokens_file))
    async with TestClient(TestServer(api.build_app(ops=True))) as client:
        yield client, tokens_file, metrics


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_ranks_and_anything_else_is_401(
    guarded: tuple[TestClient[Any, Any], Path, Metrics], data: DemoData
) -> None:
    client, _, metrics = guarded
    body = as_json(job(data, 1))
    ok = await client.post("/v1/rank", json=body, headers=bearer(TOKEN))
    assert ok.status == 200
    for headers in ({}, bearer("nope"), {"Authorization": f"Basic {TOKEN}"}, bearer(TOKEN[:-1])):
        refused = await client.post("/v1/rank", json=body, headers=headers)
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        text = await refused.text()
        assert TOKEN not in text
        assert (await refused.json())["error"] == "unauthorized"
    requests = metrics.registry.get_sample_value(
        "stream_scorer_api_requests_total", {"path": "/v1/rank", "status": "401"}
    )
    assert requests == 4


async def test_probes_and_metrics_need_no_token(
    guarded: tuple[TestClient[Any, Any], Path, Metrics],
) -> None:
    client, _, _ = guarded
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert TOKEN not in metrics


async def test_tokens_are_rotated_without_a_restart(
    guarded: tuple[TestClient[Any, Any], Path, Metrics], data: DemoData
) -> None:
    client, tokens_file, _ = guarded
    body = as_json(job(data, 2))
    new = "tok-" + "b" * 40
    tokens_file.write_text(f"{TOKEN}\n{new}\n")  # add the new one ...
    assert (await client.post("/v1/rank", json=body, headers=bearer(new))).status == 200
    tokens_file.write_text(f"{new}\n")  # ... move the callers, remove the old one
    assert (await client.post("/v1/rank", json=body, headers=bearer(TOKEN))).status == 401
    assert (await client.post("/v1/rank", json=body, headers=bearer(new))).status == 200


async def test_an_unreadable_tokens_file_rejects_everything_and_says_so_once(
    guarded: tuple[TestClient[Any, Any], Path, Metrics],
    data: DemoData,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, tokens_file, _ = guarded
    os.remove(tokens_file)
    with caplog.at_level(logging.ERROR, logger="consumer.api.auth"):
        for _ in range(3):
            response = await client.post(
                "/v1/rank", json=as_json(job(data, 3)), headers=bearer(TOKEN)
            )
            assert response.status == 401
    assert len(caplog.records) == 1
    assert "rejecting every request" in caplog.records[0].getMessage()


def test_a_missing_or_empty_tokens_file_fails_at_start(data: DemoData, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"api\.tokens_file"):
        make_api(data, with_tokens(data, tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.write_text("# nobody yet\n")
    with pytest.raises(ConfigError, match="holds no token"):
        make_api(data, with_tokens(data, empty))


def test_token_comparison_checks_every_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("first\nsecond\nthird\n")
    tokens = TokenFile(path)
    assert tokens.load() == 3
    assert [tokens.accepts(t) for t in ("first", "third", "thir", "thirdd", "")] == [
        True, True, False, False, False,
    ]  # fmt: skip
    assert "first" not in repr(tokens)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("", False), ("::", False), ("10.1.2.3", False), ("api.internal", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposure_beyond_loopback_needs_tokens_or_an_explicit_choice() -> None:
    check_exposure("127.0.0.1", authenticated=False, allow_unauthenticated=False)
    check_exposure("0.0.0.0", authenticated=True, allow_unauthenticated=False)
    check_exposure("0.0.0.0", authenticated=False, allow_unauthenticated=True)
    with pytest.raises(ConfigError, match=r"api\.tokens_file"):
        check_exposure("0.0.0.0", authenticated=False, allow_unauthenticated=False)


async def test_the_api_refuses_to_listen_on_all_interfaces_unauthenticated(
    data: DemoData,
) -> None:
    api, _ = make_api(data, config_for(data))
    with pytest.raises(ConfigError, match="without authentication"):
        await api.start("0.0.0.0", 0)
    port = await api.start("127.0.0.1", 0)
    assert port > 0
    await api.stop()
    await asyncio.sleep(0)
