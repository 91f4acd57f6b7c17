"""The scorer end to end on the real broker: jobs in, exact ranked lists out, offsets committed,
restarts resume without loss, undecodable records are skipped without stopping the loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.local_kafka import create_topics
from schemas.records import RankedList, ScoringJob
from scoring.model import load_model
from tests.consumer.kafka_support import (
    Topics,
    committed,
    make_jobs,
    new_service,
    produce,
    produce_raw,
    read_ranked,
    running,
    sample,
    scorer_config,
    wait_until,
)
from tests.consumer.reference_support import reference_scores

pytestmark = pytest.mark.kafka
PARTITIONS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("data")
    return write_demo_data(root, n_items=3_000, n_users=300, seed=3, hash_bits=16)


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Topics:
    t = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    create_topics(kafka_bootstrap, [t.jobs, t.ranked], PARTITIONS)
    return t


def assert_exact(data: DemoData, job: ScoringJob, ranked: RankedList) -> None:
    by_item = reference_scores(data, load_model(data.models_dir / "demo-lr"), job)
    probs = np.array(list(by_item.values()))
    k = min(job.top_k, probs.size)
    assert ranked.item_ids.size == k
    got = [by_item[i] for i in ranked.item_ids.tolist()]
    np.testing.assert_allclose(ranked.scores, got, rtol=0, atol=1e-5)
    assert np.all(np.diff(ranked.scores) <= 0), "best first"
    kth_best = np.sort(probs)[::-1][k - 1]
    assert ranked.scores[-1] >= kth_best - 1e-5, "no better candidate left out"


def test_jobs_in_exact_ranked_lists_out_and_offsets_committed(
    kafka_bootstrap: str, data: DemoData, topics: Topics
) -> None:
    jobs = make_jobs(data, 240)
    produce(kafka_bootstrap, topics.jobs, jobs)
    service, registry = new_service(scorer_config(data, kafka_bootstrap, topics))
    with running(service):
        wait_until(lambda: sample(registry, "stream_scorer_ranked_lists_produced_total") >= 240)
        wait_until(lambda: committed(kafka_bootstrap, topics, PARTITIONS) == 240)
    out = read_ranked(kafka_bootstrap, topics.ranked, 240)
    assert len(out) == 240
    by_request = {r.request_id: (key, headers, r) for key, headers, r in out}
    assert set(by_request) == {j.request_id for j in jobs}
    for job in jobs:
        key, headers, ranked = by_request[job.request_id]
        assert key == str(job.user_id).encode()
        assert headers["request_id"] == job.request_id.encode()
        assert headers["model_version"] == b"v1"
        assert (ranked.user_id, ranked.model, ranked.model_version) == (
            job.user_id,
            "demo-lr",
            "v1",
        )
        assert ranked.created_at_ms == job.created_at_ms
        assert ranked.scored_at_ms >= ranked.created_at_ms
        assert_exact(data, job, ranked)
    assert sample(registry, "stream_scorer_predictions_total", {"model": "demo-lr"}) == sum(
        len(j.candidates) for j in jobs
    )


def test_restarted_scorer_resumes_where_it_left_off(
    kafka_bootstrap: str, data: DemoData, topics: Topics
) -> None:
    first, second = make_jobs(data, 150, seed=5), make_jobs(data, 150, seed=6)
    produce(kafka_bootstrap, topics.jobs, first)
    service, registry = new_service(scorer_config(data, kafka_bootstrap, topics, max_jobs=16))
    with running(service):
        wait_until(lambda: sample(registry, "stream_scorer_ranked_lists_produced_total") >= 150)
    assert committed(kafka_bootstrap, topics, PARTITIONS) == 150
    produce(kafka_bootstrap, topics.jobs, second)
    service, registry = new_service(scorer_config(data, kafka_bootstrap, topics, max_jobs=16))
    with running(service):
        wait_until(lambda: sample(registry, "stream_scorer_ranked_lists_produced_total") >= 150)
        wait_until(lambda: committed(kafka_bootstrap, topics, PARTITIONS) == 300)
    # the restarted scorer read only the new jobs
    assert sample(registry, "stream_scorer_jobs_consumed_total") == 150
    out = read_ranked(kafka_bootstrap, topics.ranked, 300)
    request_ids = [r.request_id for _, _, r in out]
    assert sorted(request_ids) == sorted(j.request_id for j in first + second)


def test_undecodable_records_are_counted_and_skipped(
    kafka_bootstrap: str, data: DemoData, topics: Topics
) -> None:
    jobs = make_jobs(data, 60, seed=9)
    produce(kafka_bootstrap, topics.jobs, jobs[:30])
    produce_raw(kafka_bootstrap, topics.jobs, [b"", b"\x00\x00\x00\x00\x01garbage", b"\x07xx"])
    produce(kafka_bootstrap, topics.jobs, jobs[30:])
    service, registry = new_service(scorer_config(data, kafka_bootstrap, topics))
    with running(service):
        wait_until(lambda: sample(registry, "stream_scorer_ranked_lists_produced_total") >= 60)
        wait_until(lambda: committed(kafka_bootstrap, topics, PARTITIONS) == 63)
    assert sample(registry, "stream_scorer_errors_total", {"kind": "decode"}) == 3
    out = read_ranked(kafka_bootstrap, topics.ranked, 60)
    assert sorted(r.request_id for _, _, r in out) == sorted(j.request_id for j in jobs)
