"""The local broker node's configuration: server properties, JVM flags and logging.

One combined broker+controller KRaft node on 127.0.0.1 with replication factor 1 everywhere,
tuned for tests and benchmarks on a small machine (see `consumer.devtools.local_kafka` for its
lifecycle).
"""

from __future__ import annotations

import base64
import shlex
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""

# G1 with a 20 ms pause goal and early concurrent marking: the flags Apache Kafka's own start
# script uses (young pauses here were up to ~27 ms with the 200 ms default goal). C1 only
# (TieredStopAtLevel=1): with C2 the JIT threads kept ~0.3 core busy for the first minutes of
# every broker, more than the test and benchmark workloads on 2 cores could spare; with C1 only
# the broker used ~1/3 of the CPU at the same load. LOCAL_KAFKA_JVM_OPTS adds or overrides flags.
_JVM_OPTIONS = (
    "-Xms768m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:TieredStopAtLevel=1",
)
JVM_OPTS_ENV = "LOCAL_KAFKA_JVM_OPTS"


def jvm_options(environ: Mapping[str, str]) -> list[str]:
    """The broker's JVM flags: the defaults, then LOCAL_KAFKA_JVM_OPTS (later flags win)."""
    return [*_JVM_OPTIONS, *shlex.split(environ.get(JVM_OPTS_ENV, ""))]


NODE_ID = 1


def free_ports(count: int) -> list[int]:
    # Hold every socket until all are bound so the kernel cannot hand out one port twice.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def broker_properties(port: int, controller_port: int, log_dir: Path) -> dict[str, str]:
    """Configuration of a combined broker+controller node with replication factor 1 everywhere."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # After a SIGKILL the new incarnation cannot register until the old broker session
        # expires (DUPLICATE_BROKER_REGISTRATION); the 9 s default made restarts slow.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "3000",
        "group.initial.rebalance.delay.ms": "0",
        # Lets tests shorten session.timeout.ms so a killed consumer is evicted quickly.
        "group.min.session.timeout.ms": "1000",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
    }


def write_properties(path: Path, properties: Mapping[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
