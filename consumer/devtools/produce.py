"""`stream-scorer produce`: synthetic scoring jobs to a topic, with the service's client settings.

The producer takes the same librdkafka properties as the service: ``--config FILE`` reads the
scorer's TOML (``[kafka] bootstrap_servers``, ``input_topic`` and ``[kafka.producer]``, with the
same ``STREAM_SCORER__*`` environment overrides), and ``-X name=value`` (repeatable, as in kcat)
adds or overrides single properties; the properties the scorer owns are refused the same way
(`consumer.stream.kafka_rules`). Precedence: built-in defaults < ``--config`` < ``-X`` <
``--bootstrap`` / ``--topic``.

Before producing, the cluster must answer a metadata request for the topic within
``--connect-timeout-s``; otherwise the command fails with one line naming the address and
librdkafka's last error. librdkafka's own log lines go to the DEBUG log, once per distinct line
(``--log-level debug`` shows them). Exit status: 0 only when every job was acknowledged.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, KafkaException, Producer

from consumer.clock import SystemClock
from consumer.config import load_config, read_config_file
from consumer.devtools.generator import POOL_LISTS, JobShape, generate_jobs, produce_jobs
from consumer.errors import ConfigError, DeliveryError, TransportError
from consumer.features.snapshot import load_entity_file
from consumer.stream.kafka_rules import PRODUCER_RULES, check_properties
from consumer.telemetry.ratelimit import RateLimitedLog
from consumer.wiring import kafka_properties

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULTS: dict[str, Any] = {
    "linger.ms": 10,
    "compression.type": "lz4",
    "enable.idempotence": True,
}


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to produce: the cluster, the topic and the producer's properties."""

    bootstrap: str
    topic: str
    properties: Mapping[str, str]


def _at_least(low: float, kind: type[int] | type[float]) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` no smaller than `low` (a usage error otherwise)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= low:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be >= {low:g}, got {text}")
        return value

    return parse


def parse_property(text: str) -> tuple[str, str]:
    """``name=value`` from ``-X``; argparse reports a bad one as a usage error."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name.strip(), value


def resolve_target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """Merge the defaults, ``--config``, ``-X`` and the explicit options (later wins)."""
    bootstrap = environ.get("KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP)
    topic = "scoring-jobs"
    props: dict[str, str] = {}
    if args.config:
        text, base = read_config_file(Path(args.config))
        config = load_config(environ, text, base)
        bootstrap, topic = config.kafka.bootstrap_servers, config.kafka.input_topic
        props.update(kafka_properties(config, "producer"))  # [kafka.common], secrets, producer
    props.update(dict(args.property or []))
    check_properties("-X", props, PRODUCER_RULES, "at_least_once")
    return Target(args.bootstrap or bootstrap, args.topic or topic, props)


class _Errors:
    """error_cb: remembers librdkafka's last telling error (a callback only records the fact)."""

    def __init__(self) -> None:
        self.last: KafkaError | None = None

    def __call__(self, err: KafkaError) -> None:
        # "1/1 brokers are down" says less than the connection error before it
        if self.last is None or err.code() != KafkaError._ALL_BROKERS_DOWN:
            self.last = err


def connect(target: Target, timeout_s: float) -> Producer:
    """A producer whose cluster answered for the topic; `TransportError` in one line if not."""
    errors = _Errors()
    conf: dict[str, Any] = {**DEFAULTS, **target.properties}
    conf.update({"bootstrap.servers": target.bootstrap, "error_cb": errors})
    quiet = RateLimitedLog(log, SystemClock(), interval_s=60.0, level=logging.DEBUG)
    try:
        producer = Producer(conf, logger=quiet)
    except KafkaException as exc:
        raise ConfigError(
            f"librdkafka refused the producer: {exc.args[0].str()}", key="-X"
        ) from exc
    try:
        metadata = producer.list_topics(target.topic, timeout=timeout_s)
    except KafkaException as exc:
        producer.poll(0)  # serve the error callbacks queued meanwhile
        last = errors.last.str() if errors.last is not None else exc.args[0].str()
        raise TransportError(
            f"cannot reach the Kafka cluster at {target.bootstrap} within {timeout_s:g} s: {last}"
        ) from exc
    topic = metadata.topics.get(target.topic)
    if topic is None or topic.error is not None:
        reason = topic.error.str() if topic is not None and topic.error else "not found"
        raise TransportError(f"topic {target.topic!r} at {target.bootstrap}: {reason}")
    return producer


def cmd_produce(args: argparse.Namespace) -> int:
    """Run ``produce``: 0 when every job was acknowledged."""
    from schemas.registry import StaticRegistry
    from schemas.serde import JobEncoder

    target = resolve_target(args, os.environ)
    rng = np.random.default_rng(args.seed)
    users = _ids(args.users_file, 100_000)
    items = _ids(args.items_file, 200_000)
    shape = JobShape(model=args.model, mean_candidates=args.candidates, top_k=args.top_k)
    producer = connect(target, args.connect_timeout_s)
    clock = SystemClock()
    jobs = generate_jobs(rng, users, items, args.jobs, shape, clock)
    encoder = JobEncoder(StaticRegistry(), candidate_cache=POOL_LISTS)
    sent = produce_jobs(producer, target.topic, encoder, jobs, clock, args.rate)
    if sent != args.jobs:
        raise DeliveryError(f"only {sent} of {args.jobs} jobs were acknowledged")
    print(f"produced {sent} jobs to {target.topic}")
    return 0


def _ids(path: str | None, default_count: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    if path:
        return load_entity_file(Path(path)).ids
    return np.arange(1, default_count + 1, dtype=np.int64)


def add_produce_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``produce`` on the CLI's subparsers."""
    p = sub.add_parser(
        "produce",
        help="produce synthetic scoring jobs to a topic",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--config",
        help="the scorer's TOML config: its bootstrap servers, input topic and [kafka.producer]",
    )
    p.add_argument(
        "-X",
        dest="property",
        action="append",
        type=parse_property,
        metavar="NAME=VALUE",
        help="a librdkafka producer property (repeatable), e.g. -X security.protocol=ssl",
    )
    p.add_argument(
        "--bootstrap",
        help=f"bootstrap servers (default: --config's, else $KAFKA_BOOTSTRAP, else "
        f"{DEFAULT_BOOTSTRAP})",
    )
    p.add_argument("--topic", help="topic to write (default: --config's input topic, else "
                   "scoring-jobs)")  # fmt: skip
    p.add_argument("--jobs", type=_at_least(1, int), default=10_000,
                   help="jobs to produce (default 10000)")  # fmt: skip
    p.add_argument("--rate", type=_at_least(0, float), default=0.0,
                   help="jobs/s, 0 = as fast as possible")  # fmt: skip
    p.add_argument("--candidates", type=_at_least(1, int), default=700,
                   help="mean candidates per job (default 700)")  # fmt: skip
    p.add_argument("--top-k", type=_at_least(1, int), default=50,
                   help="top_k of every job (default 50)")  # fmt: skip
    p.add_argument("--model", default="demo-lr", help="model every job names (default demo-lr)")
    p.add_argument("--users-file", help="draw user ids from this feature CSV (default 1..100000)")
    p.add_argument("--items-file", help="draw candidates from this feature CSV (default 1..200000)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--connect-timeout-s",
        type=_at_least(0.001, float),
        default=10.0,
        help="fail if the cluster does not answer for the topic within this long (default 10)",
    )
    p.set_defaults(func=cmd_produce)
