"""Process metrics on the injected registry, GC pauses, no *_created series, the API's subset."""

from __future__ import annotations

import gc
import os

from prometheus_client import CollectorRegistry, generate_latest

from consumer.metrics import Metrics, exposition, family_names
from consumer.telemetry.process import gc_pauses


def scrape(registry: CollectorRegistry) -> dict[str, float]:
    out = {}
    for line in exposition(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_process_collectors_report_this_process() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    samples = scrape(registry)
    assert samples["process_resident_memory_bytes"] > 10 * 2**20
    assert samples["process_open_fds"] >= 3
    assert samples["process_cpu_seconds_total"] > 0
    assert any(k.startswith("python_gc_collections_total") for k in samples)
    assert any(k.startswith("python_info") for k in samples)


def test_gc_pauses_are_timed_by_generation() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    key = 'stream_scorer_gc_pause_seconds_count{generation="2"}'
    before = scrape(registry)[key]
    gc.collect()
    gc.collect()
    after = scrape(registry)
    assert after[key] == before + 2
    assert after['stream_scorer_gc_pause_seconds_sum{generation="2"}'] > 0
    assert after['stream_scorer_gc_pause_seconds_bucket{generation="2",le="+Inf"}'] == after[key]


def test_one_gc_hook_per_process_however_many_registries() -> None:
    for _ in range(5):
        Metrics(CollectorRegistry())
    assert sum(1 for cb in gc.callbacks if cb is gc_pauses()) == 1


def test_a_forked_worker_counts_only_its_own_pauses() -> None:
    gc.collect()
    assert sum(gc_pauses().buckets[2]) >= 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its own count and leave at once
        os.write(write, str(sum(gc_pauses().buckets[2])).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"0"
    os.close(read)


def test_created_series_are_left_out_of_the_scrape_only() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.jobs_consumed.inc()
    assert b"stream_scorer_jobs_consumed_created" in generate_latest(registry)
    text = exposition(registry).decode()
    assert "_created" not in text
    assert "stream_scorer_jobs_consumed_total 1.0" in text


def test_the_api_subset_exports_only_what_serving_the_api_updates() -> None:
    names = {n for n, _ in family_names(_api_registry(remote=False))}
    assert "stream_scorer_api_requests" in names
    assert "stream_scorer_model_info" in names
    assert "process_resident_memory_bytes" in names
    assert not {n for n in names if n.startswith("stream_scorer_feature_")}
    for absent in ("stream_scorer_jobs_consumed", "stream_scorer_consumer_lag",
                   "stream_scorer_stage_seconds", "stream_scorer_offset_commits"):  # fmt: skip
        assert absent not in names
    remote = {n for n, _ in family_names(_api_registry(remote=True))}
    assert "stream_scorer_feature_request_seconds" in remote


def _api_registry(remote: bool) -> CollectorRegistry:
    registry = CollectorRegistry()
    Metrics.for_api(registry, remote_features=remote)
    return registry
