"""The ranking API's two ways to run: alone (`serve`) and beside the Kafka loop
(`Service.start_api`)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumer.api.server import serve
from consumer.config import ApiConfig, Config, FeatureConfig, ModelConfig
from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.service import Service


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("api-serve")
    return write_demo_data(root, n_items=300, n_users=20, seed=9, hash_bits=12)


def config_for(data: DemoData) -> Config:
    return Config(
        models=ModelConfig(directory=str(data.models_dir), reload_interval_s=0),
        features=FeatureConfig(users_file=str(data.users_file), items_file=str(data.items_file)),
        api=ApiConfig(port=0),
    )


def rank(port: int, data: DemoData) -> tuple[int, dict[str, object]]:
    body = {"user_id": int(data.user_ids[1]), "model": "demo-lr", "top_k": 3,
            "candidates": data.item_ids[:40].tolist(), "request_id": "r-1"}  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/rank", json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.read().decode()


def test_serve_alone_until_stop(data: DemoData) -> None:
    stop, started = threading.Event(), threading.Event()
    ports: list[int] = []

    def on_started(port: int) -> None:
        ports.append(port)
        started.set()

    registry = CollectorRegistry()
    thread = threading.Thread(
        target=serve, args=(config_for(data), stop, registry), kwargs={"on_started": on_started}
    )
    thread.start()
    try:
        assert started.wait(30)
        status, body = rank(ports[0], data)
        assert status == 200
        assert (body["request_id"], body["model_version"]) == ("r-1", "v1")
        assert len(body["items"]) == 3  # type: ignore[arg-type]
        assert get(ports[0], "/healthz")[0] == 200
        assert get(ports[0], "/readyz")[0] == 200
        metrics = get(ports[0], "/metrics")[1]
        assert 'stream_scorer_api_requests_total{path="/v1/rank",status="200"} 1.0' in metrics
        assert 'stream_scorer_model_info{model="demo-lr",version="v1"} 1.0' in metrics
        # Only what serving the API updates: no Kafka loop, no feature-store client (files).
        assert "process_resident_memory_bytes" in metrics
        for absent in (
            "stream_scorer_jobs_consumed",
            "stream_scorer_consumer_lag",
            "stream_scorer_stage_seconds",
            "stream_scorer_feature_",
            "_created",
        ):
            assert absent not in metrics, absent  # fmt: skip
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError, match="refused"):
        get(ports[0], "/healthz")


def test_start_beside_a_service_shares_its_registry(data: DemoData) -> None:
    registry = CollectorRegistry()
    service = Service(config_for(data), registry)
    api = service.start_api()
    try:
        assert api.port is not None
        status, body = rank(api.port, data)
        assert status == 200
        assert body["user_id"] == int(data.user_ids[1])
    finally:
        service.stop_api(api)
        service.close()
    sample = registry.get_sample_value(
        "stream_scorer_api_requests_total", {"path": "/v1/rank", "status": "200"}
    )
    assert sample == 1.0
