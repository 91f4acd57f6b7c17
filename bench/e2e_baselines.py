"""Child processes of the end-to-end benchmark: two baseline consumers and the load generator.

    python -m bench.e2e_baselines passthrough --bootstrap B --topic T --out O --group G
    python -m bench.e2e_baselines naive --bootstrap B --topic T --out O --group G --data D --jobs N
    python -m bench.e2e_baselines per_job_numpy --bootstrap B --topic T --out O --group G \
        --data D --jobs N [--mode direct|cached]
    python -m bench.e2e_baselines generate --bootstrap B --topic T --data D --rate R --jobs N

Every command takes ``--workload standard|heavy`` (default standard): which model, snapshot files
and job shape under ``--data`` (bench/workloads.py).

- ``passthrough`` re-produces every record's key and bytes untouched, with the scorer's consumer
  and producer settings: the jobs/s that Kafka I/O alone allows on this machine.
- ``naive`` decodes each record with fastavro, scores each candidate in Python
  (``scoring.reference``, the same model and features), sorts, encodes with fastavro; it stops
  consuming after ``--jobs`` records.
- ``per_job_numpy`` decodes each record with fastavro, scores its candidates with numpy one job at
  a time, takes the top k with ``argpartition``, encodes with fastavro (bench/e2e_per_job.py):
  how a Quix Streams or Bytewax app would be written;
- ``generate`` produces jobs open loop at ``--rate`` jobs/s, each stamped ``created_at`` when
  sent, then prints one JSON line (jobs sent, their candidates).

The consumers commit an offset only once the outputs of every record before it are
acknowledged, as the scorer does, so the benchmark times all three by their committed offsets.
They run until SIGTERM.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from bench.e2e_per_job import PerJobScorer
from bench.workloads import workload_files
from consumer.clock import SystemClock
from consumer.devtools.generator import POOL_LISTS, generate_jobs, produce_jobs
from consumer.features.files import gather_users
from consumer.features.snapshot import load_entity_file
from consumer.stream.kafka import produce_waiting
from schemas.fallback import read_record, write_record
from schemas.framing import frame_header
from schemas.parsed import bundled
from schemas.records import ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder
from scoring.batch import ScoringBatch
from scoring.features import ItemTable
from scoring.model import LRModel, load_model
from scoring.reference import reference_predict

CONSUME_MAX = 512
CONSUME_TIMEOUT_S = 0.02


def consumer_conf(bootstrap: str, group: str) -> dict[str, Any]:
    """The scorer's own consumer settings (consumer/stream/kafka.py)."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": 50,
    }


def producer_conf(bootstrap: str, linger_ms: int = 5) -> dict[str, Any]:
    """The scorer's own producer settings (consumer/stream/kafka.py)."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "compression.type": "lz4",
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 200_000,
    }


class _Batch:
    """Outputs of one consumed batch awaiting acknowledgement, and the offsets they release."""

    def __init__(self, messages: list[Message]) -> None:
        self.remaining = len(messages)
        self.failed: list[str] = []
        self.positions = {
            (m.topic() or "", m.partition() or 0): (m.offset() or 0) + 1 for m in messages
        }

    def ack(self, err: KafkaError | None, _msg: Message) -> None:
        self.remaining -= 1
        if err is not None:
            self.failed.append(str(err))


class Relay:
    """Consume -> produce -> commit the acknowledged prefix of batches, until ``stop``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.consumer = Consumer(consumer_conf(args.bootstrap, args.group))
        self.producer = Producer(producer_conf(args.bootstrap))
        self.out = str(args.out)
        self.pending: deque[_Batch] = deque()
        self.consumer.subscribe([args.topic])

    def send(self, key: bytes | None, value: bytes, batch: _Batch) -> None:
        produce_waiting(self.producer, self.out, value, key, batch.ack)

    def commit_finished(self) -> None:
        self.producer.poll(0)
        positions: dict[tuple[str, int], int] = {}
        while self.pending and self.pending[0].remaining == 0:
            done = self.pending.popleft()
            if done.failed:
                raise RuntimeError(f"delivery failed: {done.failed[0]}")
            positions.update(done.positions)
        if positions:
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
            self.consumer.commit(offsets=offsets, asynchronous=True)

    def poll(self, max_messages: int) -> list[Message]:
        batch = self.consumer.consume(max_messages, CONSUME_TIMEOUT_S)
        return [m for m in batch if m.error() is None]

    def close(self) -> None:
        self.producer.flush(30)
        self.commit_finished()
        self.consumer.close()


def passthrough(args: argparse.Namespace, stop: threading.Event) -> None:
    relay = Relay(args)
    while not stop.is_set():
        messages = relay.poll(CONSUME_MAX)
        if messages:
            batch = _Batch(messages)
            relay.pending.append(batch)
            for m in messages:
                relay.send(m.key(), m.value() or b"", batch)
        relay.commit_finished()
    relay.close()


class NaiveScorer:
    """fastavro per record, a Python loop per candidate, fastavro again for the output."""

    def __init__(self, data: Path, workload: str = "standard") -> None:
        files = workload_files(workload, data)
        self.model: LRModel = load_model(data / "models" / files.model)
        self.users = load_entity_file(files.users)
        self.items: ItemTable = load_entity_file(files.items)
        self.job_schema = bundled("ScoringJob")
        self.ranked_schema = bundled("RankedList")
        self.header = frame_header(2)

    def score(self, payloads: list[bytes]) -> list[bytes]:
        jobs = [read_record(p, self.job_schema, self.job_schema) for p in payloads]
        counts = [len(j["candidates"]) for j in jobs]
        batch = ScoringBatch(
            user_ids=np.array([j["user_id"] for j in jobs], np.int64),
            contexts=[j["context"] for j in jobs],
            candidates=np.array([c for j in jobs for c in j["candidates"]], np.int64),
            row_splits=np.array([0, *np.cumsum(counts).tolist()], np.int64),
            top_k=np.array([j["top_k"] for j in jobs], np.int32),
        )
        users = gather_users(self.users, batch.user_ids)
        # One reference call per consumed chunk: its id -> row dict is built once per chunk.
        probs = reference_predict(self.model, batch, users, self.items).tolist()
        out, start = [], 0
        for job, n in zip(jobs, counts, strict=True):
            ranked = sorted(range(n), key=lambda i: -probs[start + i])[: job["top_k"]]
            items = [{"item_id": job["candidates"][i], "score": probs[start + i]} for i in ranked]
            out.append(self._encode(job, items))
            start += n
        return out

    def _encode(self, job: dict[str, Any], items: list[dict[str, Any]]) -> bytes:
        record = {
            "request_id": job["request_id"],
            "user_id": job["user_id"],
            "model": job["model"],
            "model_version": self.model.version,
            "items": items,
            "created_at": job["created_at"],
            "scored_at": int(time.time() * 1000),
            "degraded": False,
        }
        return write_record(self.header, self.ranked_schema, record)


def naive(args: argparse.Namespace, stop: threading.Event) -> None:
    scorer = NaiveScorer(Path(args.data), args.workload)
    relay, done = Relay(args), 0
    while not stop.is_set():
        messages = relay.poll(min(64, args.jobs - done)) if done < args.jobs else []
        if messages:
            batch = _Batch(messages)
            relay.pending.append(batch)
            outputs = scorer.score([m.value() or b"" for m in messages])
            for m, value in zip(messages, outputs, strict=True):
                relay.send(m.key(), value, batch)
            done += len(messages)
        elif done >= args.jobs:
            time.sleep(0.05)
        relay.commit_finished()
    relay.close()


def per_job_numpy(args: argparse.Namespace, stop: threading.Event) -> None:
    scorer = PerJobScorer(Path(args.data), args.workload, args.mode)
    relay, done = Relay(args), 0
    while not stop.is_set():
        messages = relay.poll(min(CONSUME_MAX, args.jobs - done)) if done < args.jobs else []
        if messages:
            batch = _Batch(messages)
            relay.pending.append(batch)
            for m in messages:  # one job at a time: decode, score, rank, encode, produce
                relay.send(m.key(), scorer.score(m.value() or b""), batch)
            done += len(messages)
        elif done >= args.jobs:
            time.sleep(0.05)
        relay.commit_finished()
    relay.close()


def generate(args: argparse.Namespace, _stop: threading.Event) -> None:
    data = Path(args.data)
    ids = np.load(data / "user_ids.npy"), np.load(data / "item_ids.npy")
    clock, rng = SystemClock(), np.random.default_rng(args.seed)
    predictions = 0

    def counted(jobs: Iterator[ScoringJob]) -> Iterator[ScoringJob]:
        nonlocal predictions
        for job in jobs:
            predictions += len(job.candidates)
            yield job

    producer = Producer(producer_conf(args.bootstrap, args.linger_ms))
    shape = workload_files(args.workload, data).shape
    drawn = generate_jobs(rng, ids[0], ids[1], args.jobs, shape, clock)
    # The first job draws the pool of candidate lists (~0.5 s): before the pacing clock starts,
    # or the level would open with a burst of overdue jobs.
    jobs = counted(itertools.chain([next(drawn)], drawn))
    encoder = JobEncoder(StaticRegistry(), candidate_cache=POOL_LISTS)
    sent = produce_jobs(producer, args.topic, encoder, jobs, clock, args.rate, stamp=True)
    cpu = time.process_time()
    print(json.dumps({"sent": sent, "predictions": predictions, "cpu_s": cpu}), flush=True)


COMMANDS: dict[str, Callable[[argparse.Namespace, threading.Event], None]] = {
    "passthrough": passthrough,
    "naive": naive,
    "per_job_numpy": per_job_numpy,
    "generate": generate,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", default="")
    parser.add_argument("--group", default="")
    parser.add_argument("--data", default="")
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workload", default="standard", choices=("standard", "heavy"))
    parser.add_argument("--mode", default="direct", choices=("direct", "cached"))
    args = parser.parse_args(argv)
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    COMMANDS[args.command](args, stop)


if __name__ == "__main__":
    main()
