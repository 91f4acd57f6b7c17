"""The `stream-scorer` command: run (the service), produce (synthetic jobs), demo (end to end).

The entry point is the only place that reads the process environment, parses arguments and
configures logging handlers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import numpy as np
from confluent_kafka import Producer

from consumer.clock import SystemClock
from consumer.config import load_config, read_config_file
from consumer.devtools.generator import POOL_LISTS, JobShape, generate_jobs, produce_jobs
from consumer.devtools.train import add_train_parser
from consumer.errors import ConfigError, StreamScorerError
from consumer.features.snapshot import load_entity_file

log = logging.getLogger("consumer.cli")


def cmd_run(args: argparse.Namespace) -> int:
    from consumer.workers import run_worker, run_workers

    text, base = read_config_file(Path(args.config) if args.config else None)
    config = load_config(os.environ, text, base)
    log.info("starting with %r", config)
    if args.workers > 1:
        return run_workers(config, args.workers)
    return run_worker(config, args.worker_index)


def cmd_serve(args: argparse.Namespace) -> int:
    from consumer.api.server import serve

    text, base = read_config_file(Path(args.config) if args.config else None)
    config = load_config(os.environ, text, base)
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    serve(config, stop)
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from schemas.registry import StaticRegistry
    from schemas.serde import JobEncoder

    rng = np.random.default_rng(args.seed)
    users = (
        load_entity_file(Path(args.users_file)).ids
        if args.users_file
        else np.arange(1, 100_001, dtype=np.int64)
    )
    items = (
        load_entity_file(Path(args.items_file)).ids
        if args.items_file
        else np.arange(1, 200_001, dtype=np.int64)
    )
    shape = JobShape(model=args.model, mean_candidates=args.candidates, top_k=args.top_k)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "linger.ms": 10,
            "compression.type": "lz4",
            "enable.idempotence": True,
        }
    )
    clock = SystemClock()
    jobs = generate_jobs(rng, users, items, args.jobs, shape, clock)
    sent = produce_jobs(
        producer,
        args.topic,
        JobEncoder(StaticRegistry(), candidate_cache=POOL_LISTS),
        jobs,
        clock,
        args.rate,
    )
    print(f"produced {sent} jobs to {args.topic}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from consumer.devtools.demo import DemoOptions, run_demo

    options = DemoOptions(jobs=args.jobs, latency_seconds=args.latency_seconds, seed=args.seed)
    return run_demo(options, os.environ)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream-scorer", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the scoring service")
    run.add_argument("--config", help="TOML config file (env STREAM_SCORER__* overrides)")
    run.add_argument("--workers", type=int, default=1, help="scorer processes in this group")
    run.add_argument(
        "--worker-index", type=int, default=0, help="this worker's index (transactional id)"
    )
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="run the synchronous ranking API alone")
    serve.add_argument("--config", help="TOML config file (env STREAM_SCORER__* overrides)")
    serve.set_defaults(func=cmd_serve)

    produce = sub.add_parser("produce", help="produce synthetic scoring jobs")
    produce.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    produce.add_argument("--topic", default="scoring-jobs")
    produce.add_argument("--jobs", type=int, default=10_000)
    produce.add_argument("--rate", type=float, default=0.0, help="jobs/s, 0 = as fast as possible")
    produce.add_argument("--candidates", type=int, default=700)
    produce.add_argument("--top-k", type=int, default=50)
    produce.add_argument("--model", default="demo-lr")
    produce.add_argument("--users-file")
    produce.add_argument("--items-file")
    produce.add_argument("--seed", type=int, default=7)
    produce.set_defaults(func=cmd_produce)

    demo = sub.add_parser("demo", help="score a demo stream end to end on a local broker")
    demo.add_argument("--jobs", type=int, default=20_000)
    demo.add_argument("--latency-seconds", type=float, default=5.0)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"stream-scorer: configuration error: {exc}", file=sys.stderr)
        return 2
    except StreamScorerError as exc:
        print(f"stream-scorer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
