"""Synthetic scoring jobs with a realistic shape, for demos, tests and load.

Each job: one user, a small context, ~700 distinct candidate items drawn with Zipf popularity
(a few items appear in many jobs, most rarely), top_k 50. Produced keyed by user id. With a rate,
production is open loop: job i is due at start + i / rate, whatever the scorer does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
from confluent_kafka import Producer
from numpy.typing import NDArray

from consumer.clock import Clock
from consumer.errors import DeliveryError
from consumer.stream.kafka import produce_waiting
from schemas.records import ScoringJob
from schemas.serde import JobEncoder
from scoring.synthetic import zipf_candidates

DEVICES = ("ios", "android", "web")
PAGES = ("home", "feed", "search", "video")
CHUNK_JOBS = 256
POOL_LISTS = 512  # distinct candidate lists drawn once; jobs pick among them
PACE_TICK_S = 0.001  # paced production wakes at most this often (jobs due meanwhile go together)


@dataclass(frozen=True, slots=True)
class JobShape:
    model: str = "demo-lr"
    mean_candidates: int = 700
    zipf_a: float = 1.1
    top_k: int = 50
    # (key, values) pairs: each job takes one value per key, uniformly; empty: the demo's
    # device, page and hour
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _contexts(rng: np.random.Generator, shape: JobShape, n: int) -> list[dict[str, str]]:
    """``n`` job contexts (the demo's keys unless the shape names its own)."""
    if not shape.context:
        devices = rng.integers(0, len(DEVICES), size=n)
        pages = rng.integers(0, len(PAGES), size=n)
        hours = rng.integers(0, 24, size=n)
        return [
            {"device": DEVICES[devices[j]], "page": PAGES[pages[j]], "hour": str(int(hours[j]))}
            for j in range(n)
        ]
    picks = [(key, values, rng.integers(0, len(values), size=n)) for key, values in shape.context]
    return [{key: values[codes[j]] for key, values, codes in picks} for j in range(n)]


def generate_jobs(
    rng: np.random.Generator,
    user_ids: NDArray[np.int64],
    item_ids: NDArray[np.int64],
    n_jobs: int,
    shape: JobShape,
    clock: Clock,
) -> Iterator[ScoringJob]:
    """Yield `n_jobs` jobs; created_at is stamped again by `produce_jobs` when each is sent.

    Drawing distinct Zipf-popular candidates costs ~1 ms per list, so a pool of lists is drawn
    once and each job takes one of them: generation keeps up with open-loop rates of thousands of
    jobs per second.
    """
    pool, splits = zipf_candidates(
        rng, item_ids, min(n_jobs, POOL_LISTS), shape.mean_candidates, shape.zipf_a
    )
    done = 0
    while done < n_jobs:
        n = min(CHUNK_JOBS, n_jobs - done)
        picks = rng.integers(0, splits.size - 1, size=n)
        users = rng.choice(user_ids, size=n)
        for j, context in enumerate(_contexts(rng, shape, n)):
            yield ScoringJob(
                request_id=str(uuid.uuid4()),
                user_id=int(users[j]),
                model=shape.model,
                created_at_ms=clock.now_ms(),
                context=context,
                candidates=pool[splits[picks[j]] : splits[picks[j] + 1]],
                top_k=shape.top_k,
            )
        done += n


def produce_jobs(
    producer: Producer,
    topic: str,
    encoder: JobEncoder,
    jobs: Iterator[ScoringJob],
    clock: Clock,
    rate: float = 0.0,
    stamp: bool = True,
) -> int:
    """Produce every job (paced at `rate` jobs/s when > 0); returns how many were acknowledged.

    With `stamp`, each job's created_at is set to the moment it is sent. Pacing is open loop:
    job i is due at start + i / rate; the producer wakes at most every PACE_TICK_S and sends
    every job due by then, so its own CPU stays small at thousands of jobs per second.
    """
    acked = 0
    failed: list[str] = []

    def report(err: object, _msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1
        else:
            failed.append(str(err))

    start = time.monotonic()
    for sent, job in enumerate(jobs):
        if rate > 0 and sent >= (time.monotonic() - start) * rate:
            # Sleep to the next job's due time, but at least PACE_TICK_S: jobs that fell due
            # meanwhile go out back to back, each stamped when it is sent.
            producer.poll(0)
            time.sleep(max(start + sent / rate - time.monotonic(), PACE_TICK_S))
        value = encoder.encode(replace(job, created_at_ms=clock.now_ms()) if stamp else job)
        produce_waiting(producer, topic, value, str(job.user_id).encode(), report)
        if sent % CHUNK_JOBS == 0:
            producer.poll(0)  # serve delivery reports of an unpaced run as it goes
    producer.flush(60)
    if failed:
        raise DeliveryError(f"{len(failed)} jobs not delivered, first: {failed[0]}")
    return acked
