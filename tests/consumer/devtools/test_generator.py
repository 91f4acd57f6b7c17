"""Synthetic jobs and paced production (a fake producer: no broker needed)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from consumer.clock import SystemClock
from consumer.devtools.generator import POOL_LISTS, JobShape, generate_jobs, produce_jobs
from consumer.errors import DeliveryError
from schemas import JobDecoder, JobEncoder, StaticRegistry


class RecordingProducer:
    """Acknowledges every record at the next poll/flush; fails those whose key is in ``fail``."""

    def __init__(self, fail: frozenset[bytes] = frozenset()) -> None:
        self.records: list[tuple[float, bytes, bytes]] = []
        self._pending: list[tuple[Any, bytes]] = []
        self._fail = fail
        self.polls = 0

    def produce(
        self, topic: str, key: bytes, value: bytes, on_delivery: Any, headers: Any = None
    ) -> None:
        self.records.append((time.monotonic(), key, value))
        self._pending.append((on_delivery, key))

    def poll(self, timeout: float = 0.0) -> int:
        self.polls += 1
        pending, self._pending = self._pending, []
        for callback, key in pending:
            callback("broker down" if key in self._fail else None, None)
        return len(pending)

    def flush(self, timeout: float = 0.0) -> int:
        self.poll()
        return 0


def jobs(n: int) -> list[Any]:
    rng = np.random.default_rng(3)
    users, items = np.arange(1, 50, dtype=np.int64), np.arange(1, 5_000, dtype=np.int64)
    shape = JobShape(mean_candidates=60)
    return list(generate_jobs(rng, users, items, n, shape, SystemClock()))


def test_every_job_is_sent_stamped_and_acknowledged() -> None:
    producer = RecordingProducer()
    drawn = jobs(600)
    before = SystemClock().now_ms()
    encoder = JobEncoder(StaticRegistry(), candidate_cache=POOL_LISTS)
    sent = produce_jobs(producer, "t", encoder, iter(drawn), SystemClock())  # type: ignore[arg-type]
    assert sent == 600
    decoded = JobDecoder(StaticRegistry()).decode_batch([v for _, _, v in producer.records])
    assert decoded.jobs.request_ids == [j.request_id for j in drawn]
    assert (decoded.jobs.created_at_ms >= before).all()
    assert (
        decoded.jobs.candidates.tolist() == np.concatenate([j.candidates for j in drawn]).tolist()
    )
    assert [k for _, k, _ in producer.records] == [str(j.user_id).encode() for j in drawn]


def test_paced_production_is_open_loop_and_wakes_in_ticks() -> None:
    producer, rate, n = RecordingProducer(), 2_000.0, 400
    start = time.monotonic()
    produce_jobs(producer, "t", JobEncoder(StaticRegistry()), iter(jobs(n)), SystemClock(), rate)  # type: ignore[arg-type]
    sent_at = np.array([t for t, _, _ in producer.records]) - start
    due = np.arange(n) / rate
    assert (sent_at >= due - 1e-3).all()  # never ahead of schedule
    assert sent_at[-1] >= (n - 1) / rate
    # Jobs due within one tick go together: far fewer wake-ups than jobs.
    assert producer.polls < n / 1.5


def test_undelivered_jobs_raise() -> None:
    drawn = jobs(10)
    producer = RecordingProducer(fail=frozenset({str(drawn[3].user_id).encode()}))
    with pytest.raises(DeliveryError, match="not delivered"):
        produce_jobs(producer, "t", JobEncoder(StaticRegistry()), iter(drawn), SystemClock())  # type: ignore[arg-type]


def test_contexts_follow_the_shape() -> None:
    rng = np.random.default_rng(4)
    users, items = np.arange(1, 50, dtype=np.int64), np.arange(1, 5_000, dtype=np.int64)
    default = list(
        generate_jobs(rng, users, items, 20, JobShape(mean_candidates=30), SystemClock())
    )
    assert all(set(j.context) == {"device", "page", "hour"} for j in default)
    keys = (("country", ("country-0", "country-1")), ("device", ("ios",)))
    shape = JobShape(mean_candidates=30, context=keys)
    custom = list(generate_jobs(rng, users, items, 50, shape, SystemClock()))
    assert all(set(j.context) == {"country", "device"} for j in custom)
    assert {j.context["country"] for j in custom} == {"country-0", "country-1"}
    assert {j.context["device"] for j in custom} == {"ios"}
