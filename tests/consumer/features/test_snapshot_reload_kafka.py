"""Snapshot hot reload on the real broker: a new item snapshot written mid-stream takes over.

The scorer serves a Parquet item snapshot; a second one (same items, other feature values) is
renamed into place while jobs flow. Jobs sent after the swap are ranked exactly as the reference
ranks them with the new snapshot, a broken file written afterwards changes nothing, and the
snapshot metrics count one success and one failure.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.local_kafka import create_topics
from consumer.features.files import gather_users, read_entity_csv
from consumer.features.parquet import write_entity_parquet
from consumer.features.snapshot import SnapshotStore, load_entity_file
from schemas.records import RankedList, ScoringJob
from scoring.batch import ScoringBatch
from scoring.features import ItemTable
from scoring.reference import reference_predict
from scoring.synthetic import demo_spec, random_items
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
from tests.consumer.reference_support import demo_model

pytestmark = pytest.mark.kafka
PARTITIONS = 2
JOBS = 300


def write_items(data: DemoData, path: Path, seed: int, mtime_s: int) -> None:
    raw = random_items(len(data.item_ids), demo_spec(), seed)  # columns only: ids stay the demo's
    write_entity_parquet(path, "item_id", data.item_ids, raw.categorical, raw.dense)
    os.utime(path, (mtime_s, mtime_s))


@pytest.fixture
def data(tmp_path: Path) -> DemoData:
    return write_demo_data(tmp_path / "data", n_items=2_000, n_users=200, seed=3, hash_bits=16)


@pytest.fixture
def topics(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Topics:
    t = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    create_topics(kafka_bootstrap, [t.jobs, t.ranked], PARTITIONS)
    return t


def expected_scores(data: DemoData, items: ItemTable, job: ScoringJob) -> dict[int, float]:
    cands = np.asarray(job.candidates, dtype=np.int64)
    batch = ScoringBatch(
        user_ids=np.array([job.user_id], np.int64), contexts=[job.context], candidates=cands,
        row_splits=np.array([0, cands.size], np.int64), top_k=np.array([job.top_k], np.int32),
    )  # fmt: skip
    users = gather_users(read_entity_csv(data.users_file), batch.user_ids)
    probs = reference_predict(demo_model(data), batch, users, items)
    return dict(zip(cands.tolist(), probs.tolist(), strict=True))


def ranked_like(data: DemoData, items: ItemTable, job: ScoringJob, ranked: RankedList) -> bool:
    by_item = expected_scores(data, items, job)
    expected = [by_item[i] for i in ranked.item_ids.tolist()]
    best = sorted(by_item.values(), reverse=True)[: ranked.item_ids.size]
    return bool(np.allclose(ranked.scores, expected, rtol=0, atol=1e-5)) and bool(
        np.allclose(ranked.scores, best, rtol=0, atol=1e-5)
    )


def test_new_item_snapshot_takes_over_mid_stream(
    kafka_bootstrap: str, data: DemoData, topics: Topics
) -> None:
    items_file = data.root / "features" / "items.parquet"
    write_items(data, items_file, seed=3, mtime_s=1_000)
    old = load_entity_file(items_file)
    base = scorer_config(data, kafka_bootstrap, topics, max_jobs=16)
    features = replace(base.features, items_file=str(items_file), snapshot_reload_interval_s=1)
    service, registry = new_service(replace(base, features=features))
    jobs = make_jobs(data, JOBS, seed=5)
    before, after = jobs[: JOBS // 2], jobs[JOBS // 2 :]
    loads = "stream_scorer_feature_snapshot_loads_total"

    def produced() -> float:
        return sample(registry, "stream_scorer_ranked_lists_produced_total")

    def feed(chunk: list[ScoringJob]) -> None:  # a steady stream, not one burst
        for i in range(0, len(chunk), 15):
            produce(kafka_bootstrap, topics.jobs, chunk[i : i + 15])
            time.sleep(0.05)

    with running(service):
        wait_until(lambda: len(service.state.assigned) == PARTITIONS)
        feeder = threading.Thread(target=feed, args=(before,))
        feeder.start()
        wait_until(lambda: produced() >= JOBS // 8)
        staging = items_file.with_name("next.parquet")
        write_items(data, staging, seed=77, mtime_s=2_000)
        staging.replace(items_file)  # atomic: the watcher never reads half a file
        wait_until(lambda: sample(registry, loads, {"entity": "item", "result": "success"}) == 1)
        feeder.join()
        feed(after)  # whatever the timing above, the new snapshot must rank these
        wait_until(lambda: produced() >= JOBS)
        items_file.write_bytes(b"not parquet")  # a broken snapshot keeps the new one serving
        wait_until(lambda: sample(registry, loads, {"entity": "item", "result": "failure"}) == 1)

    write_items(data, data.root / "expected.parquet", seed=77, mtime_s=2_000)
    new = load_entity_file(data.root / "expected.parquet")  # what the swapped-in file held
    assert isinstance(service.features, SnapshotStore)
    assert service.features.items.token != old.token
    assert service.features.items.ids.tolist() == new.ids.tolist()
    out = {r.request_id: r for _, _, r in read_ranked(kafka_bootstrap, topics.ranked, JOBS)}
    assert sorted(out) == sorted(j.request_id for j in jobs)
    for job in after[::15]:
        assert ranked_like(data, new, job, out[job.request_id])
    # the two snapshots rank differently, so the check above tells them apart
    assert not all(ranked_like(data, old, job, out[job.request_id]) for job in after[::15])
    assert sample(registry, "stream_scorer_feature_snapshot_rows", {"entity": "item"}) == len(
        data.item_ids
    )
