"""Hot reload on the real broker: a new model version saved mid-stream takes over between batches.

Every ranked list names v1 or v2, its scores are exactly that version's, v1 never returns once v2
has scored a batch, and the metrics moved to v2.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from consumer.devtools.demo_data import MODEL, DemoData, write_demo_data
from consumer.devtools.local_kafka import create_topics
from consumer.models.watch import ModelWatcher
from schemas.records import RankedList, ScoringJob
from scoring.model import LRModel, load_model, save_model
from scoring.synthetic import demo_spec, random_model
from tests.consumer.kafka_support import (
    Topics,
    make_jobs,
    new_service,
    produce,
    read_ranked,
    running,
    sample,
    scorer_config,
    wait_until,
)
from tests.consumer.reference_support import reference_scores

pytestmark = pytest.mark.kafka
PARTITIONS = 3
JOBS = 600


@pytest.fixture
def data(tmp_path: Path) -> DemoData:
    return write_demo_data(tmp_path / "data", n_items=3_000, n_users=300, seed=3, hash_bits=16)


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Topics:
    t = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    create_topics(kafka_bootstrap, [t.jobs, t.ranked], PARTITIONS)
    return t


def assert_scored_by(data: DemoData, model: LRModel, job: ScoringJob, ranked: RankedList) -> None:
    by_item = reference_scores(data, model, job)
    expected = [by_item[i] for i in ranked.item_ids.tolist()]
    np.testing.assert_allclose(ranked.scores, expected, rtol=0, atol=1e-5)
    best = sorted(by_item.values(), reverse=True)[: ranked.item_ids.size]
    np.testing.assert_allclose(ranked.scores, best, rtol=0, atol=1e-5)


def test_new_version_takes_over_mid_stream_without_mixed_batches(
    kafka_bootstrap: str, data: DemoData, topics: Topics
) -> None:
    v1 = load_model(data.models_dir / MODEL)
    v2 = random_model(MODEL, "v2", demo_spec(), hash_bits=16, seed=42)
    jobs = make_jobs(data, JOBS, seed=11)
    before, after = jobs[: JOBS // 2], jobs[JOBS // 2 :]
    service, registry = new_service(scorer_config(data, kafka_bootstrap, topics, max_jobs=16))
    watcher = ModelWatcher(service.models, service.metrics, interval_s=0.05)

    def produced() -> float:
        return sample(registry, "stream_scorer_ranked_lists_produced_total")

    def feed(chunk: list[ScoringJob]) -> None:  # a steady stream, not one burst
        for i in range(0, len(chunk), 20):
            produce(kafka_bootstrap, topics.jobs, chunk[i : i + 20])
            time.sleep(0.05)

    with running(service):
        watcher.start()
        try:
            wait_until(lambda: len(service.state.assigned) == PARTITIONS)
            feeder = threading.Thread(target=feed, args=(before,))
            feeder.start()
            wait_until(lambda: produced() >= JOBS // 8)
            save_model(v2, data.models_dir / MODEL)  # atomic: the scorer never sees half of it
            wait_until(lambda: service.models.current().models[MODEL].version == "v2")
            feeder.join()
            feed(after)  # whatever the timing above, v2 must score these
            wait_until(lambda: produced() >= JOBS)
        finally:
            watcher.stop()

    out = read_ranked(kafka_bootstrap, topics.ranked, JOBS)
    assert sorted(r.request_id for _, _, r in out) == sorted(j.request_id for j in jobs)
    versions = {r.request_id: r.model_version for _, _, r in out}
    assert set(versions.values()) == {"v1", "v2"}
    for _, headers, ranked in out:
        assert headers["model_version"] == ranked.model_version.encode()
    assert {versions[j.request_id] for j in after} == {"v2"}
    # the loop is one thread: once a batch was scored by v2, no later batch used v1
    last_v1 = max(r.scored_at_ms for _, _, r in out if r.model_version == "v1")
    first_v2 = min(r.scored_at_ms for _, _, r in out if r.model_version == "v2")
    assert last_v1 <= first_v2
    # each list is exactly the ranking of the version it names (a sample of both)
    by_request = {r.request_id: r for _, _, r in out}
    models = {"v1": v1, "v2": v2}
    for version in ("v1", "v2"):
        named = [j for j in jobs if versions[j.request_id] == version]
        for job in named[:: max(len(named) // 15, 1)]:
            assert_scored_by(data, models[version], job, by_request[job.request_id])

    reloads = {"model": MODEL, "result": "success"}
    assert sample(registry, "stream_scorer_model_reloads_total", reloads) == 1
    info = "stream_scorer_model_info"
    assert sample(registry, info, {"model": MODEL, "version": "v2"}) == 1
    assert registry.get_sample_value(info, {"model": MODEL, "version": "v1"}) is None
