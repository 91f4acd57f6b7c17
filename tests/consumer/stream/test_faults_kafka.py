"""Fault tests on the real broker: kill -9, broker restart, scale out/in, poison, SIGTERM.

Each test is bounded in jobs and time, asserts counts, and appends its tally (sent, ranked lists
seen, duplicates, dead-lettered, lost) to `.cache/fault-report.jsonl` for the record.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.local_kafka import LocalKafka, create_topics, default_cache_dir
from consumer.devtools.ranked_reader import headers_of
from schemas.records import ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder
from tests.consumer.kafka_support import (
    Topics,
    committed,
    make_jobs,
    produce,
    produce_raw,
    read_all,
    request_ids,
    wait_until,
)
from tests.consumer.scorer_process import ScorerProcess, ScorerSpec

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.slow]
PARTITIONS = 4
MODES = ["at_least_once", "exactly_once"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("faults")
    return write_demo_data(root, n_items=5_000, n_users=500, seed=11, hash_bits=16)


def new_topics(bootstrap: str, unique_name: Callable[[str], str]) -> Topics:
    t = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    create_topics(bootstrap, [t.jobs, t.ranked], PARTITIONS)
    return t


def spec_for(
    bootstrap: str, t: Topics, data: DemoData, mode: str, dead_letter_topic: str = "",
    instance_id: str = "",
) -> ScorerSpec:  # fmt: skip
    return ScorerSpec(
        bootstrap, t.jobs, t.ranked, t.group, data, mode=mode,
        dead_letter_topic=dead_letter_topic, instance_id=instance_id,
    )  # fmt: skip


def done_or_exited(
    bootstrap: str, t: Topics, total: int, scorer: ScorerProcess
) -> Callable[[], bool]:
    return lambda: committed(bootstrap, t, PARTITIONS) == total or not scorer.alive()


def report(test: str, **tally: float | str) -> None:
    path = default_cache_dir({}) / "fault-report.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps({"test": test, "at": time.time(), **tally}) + "\n")


def tally(sent: list[ScoringJob], seen: list[str]) -> dict[str, int]:
    counts = Counter(seen)
    wanted = {j.request_id for j in sent}
    return {
        "sent": len(sent),
        "ranked_lists_seen": len(seen),
        "duplicates": sum(c - 1 for c in counts.values()),
        "lost": len(wanted - set(counts)),
        "unexpected": len(set(counts) - wanted),
    }


def check_delivered(
    bootstrap: str, t: Topics, jobs: list[ScoringJob], test: str, mode: str, **extra: float
) -> dict[str, int]:
    """Tally the committed ranked lists against ``jobs`` and report them; none may be lost, and
    under exactly-once none duplicated."""
    seen = request_ids(read_all(bootstrap, t.ranked, committed_only=True))
    result = tally(jobs, seen)
    report(f"{test}[{mode}]", dead_lettered=0, **extra, **result)
    assert result["lost"] == 0
    if mode == "exactly_once":
        assert result["duplicates"] == 0, result
    return result


@pytest.mark.parametrize("mode", MODES)
def test_kill_9_five_times_loses_nothing(
    kafka_bootstrap: str, data: DemoData, unique_name: Callable[[str], str], tmp_path: Path,
    mode: str,
) -> None:  # fmt: skip
    t = new_topics(kafka_bootstrap, unique_name)
    jobs = make_jobs(data, 30_000, seed=21, mean_candidates=300)
    produce(kafka_bootstrap, t.jobs, jobs)
    # static membership: a restarted scorer reclaims its partitions without a session timeout
    spec = spec_for(kafka_bootstrap, t, data, mode, instance_id=unique_name("scorer"))
    kills, at = 0, []
    for _ in range(5):
        scorer = ScorerProcess(spec, tmp_path)
        before = committed(kafka_bootstrap, t, PARTITIONS)
        wait_until(lambda b=before: committed(kafka_bootstrap, t, PARTITIONS) > b, 90)  # type: ignore[misc]
        time.sleep(random.uniform(0.0, 0.3))
        scorer.kill9()
        kills += 1
        at.append(committed(kafka_bootstrap, t, PARTITIONS))
    assert at[-1] < len(jobs), f"the run ended before the last kill: {at}"
    scorer = ScorerProcess(spec, tmp_path)
    wait_until(lambda: committed(kafka_bootstrap, t, PARTITIONS) == len(jobs), 180)
    code, _ = scorer.terminate()
    assert code == 0, scorer.log_tail()
    result = check_delivered(kafka_bootstrap, t, jobs, "kill_9_x5", mode, kills=kills)
    assert result["unexpected"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_broker_restart_mid_run_recovers_by_itself(
    local_kafka: LocalKafka, data: DemoData, unique_name: Callable[[str], str], tmp_path: Path,
    mode: str,
) -> None:  # fmt: skip
    bootstrap = local_kafka.bootstrap
    t = new_topics(bootstrap, unique_name)
    jobs = make_jobs(data, 10_000, seed=22, mean_candidates=40)
    produce(bootstrap, t.jobs, jobs)
    spec = spec_for(bootstrap, t, data, mode)
    scorer = ScorerProcess(spec, tmp_path)
    wait_until(lambda: committed(bootstrap, t, PARTITIONS) > 1_000, 90)
    local_kafka.restart()
    restarts = 0
    while True:  # the test is the supervisor: a worker that exits is restarted, as in production
        wait_until(done_or_exited(bootstrap, t, len(jobs), scorer), 180)
        if scorer.alive():
            break
        code = scorer.reap()
        assert mode == "exactly_once", f"exited with {code}: {scorer.log_tail()}"
        assert code == 75, scorer.log_tail()  # the transaction stall watchdog
        restarts += 1
        assert restarts <= 2, "the worker kept stalling"
        scorer = ScorerProcess(spec, tmp_path)
    code, _ = scorer.terminate()
    assert code == 0, scorer.log_tail()
    check_delivered(bootstrap, t, jobs, "broker_restart", mode, worker_restarts=restarts)


@pytest.mark.parametrize("mode", MODES)
def test_scale_out_then_in_mid_run(
    kafka_bootstrap: str, data: DemoData, unique_name: Callable[[str], str], tmp_path: Path,
    mode: str,
) -> None:  # fmt: skip
    t = new_topics(kafka_bootstrap, unique_name)
    jobs = make_jobs(data, 16_000, seed=23, mean_candidates=40)
    produce(kafka_bootstrap, t.jobs, jobs)
    spec = spec_for(kafka_bootstrap, t, data, mode)
    first = ScorerProcess(spec, tmp_path, worker_index=0)
    wait_until(lambda: committed(kafka_bootstrap, t, PARTITIONS) > 2_000, 90)
    second = ScorerProcess(spec, tmp_path, worker_index=1)
    wait_until(lambda: committed(kafka_bootstrap, t, PARTITIONS) > 8_000, 120)
    code, _ = first.terminate()
    assert code == 0, first.log_tail()
    wait_until(lambda: committed(kafka_bootstrap, t, PARTITIONS) == len(jobs), 180)
    code, _ = second.terminate()
    assert code == 0, second.log_tail()
    check_delivered(kafka_bootstrap, t, jobs, "scale_out_in", mode)


def corrupt(payloads: list[bytes], rng: random.Random, data: DemoData) -> list[bytes]:
    """Records that can never be scored, each kind by construction."""
    encoder = JobEncoder(StaticRegistry())
    base = make_jobs(data, 8, seed=99, mean_candidates=20)

    def invalid(i: int) -> bytes:
        job = base[i % len(base)]
        variants: list[ScoringJob] = [
            replace(job, candidates=np.zeros(0, np.int64)),
            replace(job, candidates=np.array([5, -3, 7], np.int64)),
            replace(job, top_k=0),
            replace(job, model="no-such-model"),
            replace(job, user_id=-1),
        ]
        return encoder.encode(variants[i % len(variants)])

    makers: list[Callable[[int], bytes]] = [
        lambda i: payloads[i % len(payloads)][
            : rng.randrange(1, len(payloads[i % len(payloads)]) - 1)
        ],
        lambda i: b"\x01" + payloads[i % len(payloads)][1:],  # wrong magic byte
        lambda i: b"\x00\x00\x00\x00\x63" + payloads[i % len(payloads)][5:],  # unknown schema id
        lambda i: bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64))),
        lambda i: payloads[i % len(payloads)] + b"\x02\x04",  # trailing bytes
        invalid,
    ]
    return [makers[i % len(makers)](i) for i in range(len(payloads))]


def test_fuzzed_and_corrupted_records_all_dead_lettered_valid_all_scored(
    kafka_bootstrap: str, data: DemoData, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    t = new_topics(kafka_bootstrap, unique_name)
    dlq = unique_name("dlq")
    create_topics(kafka_bootstrap, [dlq], 1)
    rng = random.Random(5)
    jobs = make_jobs(data, 3_000, seed=24, mean_candidates=40)
    encoder = JobEncoder(StaticRegistry())
    bad = corrupt([encoder.encode(j) for j in jobs[:2_000]], rng, data)
    for start in range(0, 3_000, 300):  # interleave valid and corrupted chunks
        produce(kafka_bootstrap, t.jobs, jobs[start : start + 300])
        produce_raw(kafka_bootstrap, t.jobs, bad[start // 3 * 2 : start // 3 * 2 + 200])
    scorer = ScorerProcess(
        spec_for(kafka_bootstrap, t, data, "at_least_once", dead_letter_topic=dlq), tmp_path
    )
    wait_until(lambda: committed(kafka_bootstrap, t, PARTITIONS) == 5_000, 180)
    assert scorer.alive(), scorer.log_tail()
    code, _ = scorer.terminate()
    assert code == 0, scorer.log_tail()
    seen = request_ids(read_all(kafka_bootstrap, t.ranked))
    dead = read_all(kafka_bootstrap, dlq)
    result = tally(jobs, seen)
    classes = Counter(headers_of(m)["error.class"] for m in dead)
    report("fuzzed_corrupted", dead_lettered=len(dead), corrupted_sent=len(bad),
           classes=json.dumps({k.decode(): v for k, v in classes.items()}), **result)  # fmt: skip
    assert result["lost"] == 0
    assert result["duplicates"] == 0
    assert len(dead) == len(bad)
    assert sorted(m.value() or b"" for m in dead) == sorted(bad)
    for m in dead:
        headers = headers_of(m)
        assert headers["error.reason"]
        assert headers["source.topic"] == t.jobs.encode()
    assert set(classes) == {b"decode", b"unknown_schema", b"invalid", b"unknown_model"}


def test_sigterm_under_load_exits_0_within_bound_and_commits_what_it_wrote(
    kafka_bootstrap: str, data: DemoData, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    t = new_topics(kafka_bootstrap, unique_name)
    jobs = make_jobs(data, 20_000, seed=25, mean_candidates=200)
    produce(kafka_bootstrap, t.jobs, jobs)
    scorer = ScorerProcess(spec_for(kafka_bootstrap, t, data, "at_least_once"), tmp_path)
    wait_until(lambda: committed(kafka_bootstrap, t, PARTITIONS) > 2_000, 90)
    code, took = scorer.terminate()
    assert code == 0, scorer.log_tail()
    assert took < 20, f"shutdown took {took:.1f}s, bound is 20s"
    position = committed(kafka_bootstrap, t, PARTITIONS)
    seen = request_ids(read_all(kafka_bootstrap, t.ranked))
    report("sigterm_under_load", sent=len(jobs), ranked_lists_seen=len(seen),
           committed=position, shutdown_s=round(took, 2), lost=0, dead_lettered=0,
           duplicates=len(seen) - len(set(seen)))  # fmt: skip
    assert position < len(jobs), "stopped mid-run"
    assert len(seen) == position
    assert len(set(seen)) == len(seen)
