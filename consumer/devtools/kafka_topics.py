"""Admin operations on a Kafka cluster: readiness of a starting broker, topic creation.

Works against any cluster (`create_topics`), and against the local broker while it boots
(`await_broker`), when every connection is refused until the JVM listens.
``python -m consumer.devtools.kafka_topics`` creates topics from the command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from consumer.devtools.kafka_jars import LocalKafkaError


def _admin(bootstrap: str, properties: Mapping[str, str] | None = None) -> AdminClient:
    # While the JVM boots every connection is refused: librdkafka's complaints are silenced
    # (log_level 0), and a short backoff keeps its default (exponential, up to 10 s) from
    # delaying readiness. No Python `logger=`: a log callback into a client being destroyed on
    # another thread has crashed the interpreter during broker restarts.
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 250,
        "log_level": 0,
    }
    config.update(properties or {})  # e.g. SASL_SSL credentials of a secured cluster
    return AdminClient(config)


def await_broker(
    bootstrap: str,
    node_id: int,
    exited: Callable[[], bool],
    timeout_s: float,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Wait until metadata lists the node: it has registered with its controller, unfenced."""
    admin = _admin(bootstrap, properties)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if exited():
            raise LocalKafkaError("the broker process exited during startup")
        try:
            if node_id in admin.list_topics(timeout=2.0).brokers:
                return
        except KafkaException:
            pass
        time.sleep(0.2)
    raise LocalKafkaError(f"the broker at {bootstrap} was not ready within {timeout_s:.0f} s")


def create_topics(
    bootstrap: str,
    names: Sequence[str],
    partitions: int = 1,
    timeout_s: float = 30.0,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Create topics (existing ones are accepted) and wait until every partition has a leader.

    ``properties``: extra librdkafka properties of the admin client (security settings)."""
    admin = _admin(bootstrap, properties)
    new_topics = [NewTopic(name, num_partitions=partitions) for name in names]
    for name, future in admin.create_topics(new_topics, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise LocalKafkaError(f"creating topic {name!r} failed: {exc}") from exc
    _await_leaders(admin, names, time.monotonic() + timeout_s)


def _await_leaders(admin: AdminClient, names: Sequence[str], deadline: float) -> None:
    pending = set(names) - _topics_with_leaders(admin)
    while pending:
        if time.monotonic() > deadline:
            raise LocalKafkaError(f"topics without leaders: {sorted(pending)}")
        time.sleep(0.1)
        pending -= _topics_with_leaders(admin)


def _topics_with_leaders(admin: AdminClient) -> set[str]:
    topics = admin.list_topics(timeout=5.0).topics
    return {
        name
        for name, topic in topics.items()
        if topic.error is None
        and topic.partitions
        and all(partition.leader >= 0 for partition in topic.partitions.values())
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m consumer.devtools.kafka_topics --bootstrap B [--partitions N] TOPIC...``."""
    parser = argparse.ArgumentParser(
        prog="python -m consumer.devtools.kafka_topics",
        description="Create topics on a Kafka cluster (existing ones are accepted).",
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="bootstrap servers")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of each topic")
    parser.add_argument("topics", nargs="+", metavar="TOPIC", help="topic names")
    args = parser.parse_args(argv)
    try:
        create_topics(args.bootstrap, args.topics, args.partitions)
    except LocalKafkaError as exc:
        print(f"kafka_topics: {exc}", file=sys.stderr)
        return 1
    print(f"topics ready at {args.bootstrap}: {', '.join(args.topics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
