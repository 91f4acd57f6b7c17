"""The local broker node's configuration: server properties, JVM flags and logging.

One combined broker+controller KRaft node on 127.0.0.1 with replication factor 1 everywhere,
tuned for tests and benchmarks on a small machine (see `consumer.devtools.local_kafka` for its
lifecycle).

Secured (`BrokerSecurity` given): clients reach a SASL_SSL listener (SCRAM-SHA-512 users created
when the storage is formatted, TLS with a test CA); the broker talks to itself (transaction
markers) and to its controller over mutual-TLS listeners whose certificate principal is a super
user; the KRaft `StandardAuthorizer` denies whatever no ACL allows. The plaintext variant has one
PLAINTEXT listener and no authorizer.
"""

from __future__ import annotations

import base64
import shlex
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
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


SCRAM_MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@dataclass(frozen=True, slots=True)
class BrokerSecurity:
    """What a secured node needs: TLS files, its SCRAM users and which of them is the admin.

    ``users`` maps SCRAM-SHA-512 user names to passwords; they are written into the metadata when
    the storage is formatted, so they exist before the broker first starts. ``admin`` is a super
    user (ACLs do not apply to it); every other user gets exactly the ACLs granted to it.
    """

    ca_pem: Path
    keystore: Path  # PKCS#12 holding the broker key and its certificate chain
    keystore_password: str
    broker_principal: str  # the keystore certificate's principal (mutual-TLS listeners)
    users: Mapping[str, str]
    admin: str = "admin"

    def __repr__(self) -> str:
        return f"BrokerSecurity(users={sorted(self.users)}, admin={self.admin!r}, passwords=***)"

    def client_properties(self, user: str) -> dict[str, str]:
        """librdkafka properties for ``user`` on the SASL_SSL listener (hostname verified)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": user,
            "sasl.password": self.users[user],
            "ssl.ca.location": str(self.ca_pem),
            "ssl.endpoint.identification.algorithm": "https",
        }

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating every user."""
        return [
            f"--add-scram={SCRAM_MECHANISM}=[name={name},password={password}]"
            for name, password in self.users.items()
        ]


def _listeners(port: int, controller_port: int, internal_port: int | None) -> dict[str, str]:
    if internal_port is None:
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port},"
        f"CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
    }


def security_properties(security: BrokerSecurity) -> dict[str, str]:
    """TLS everywhere, SCRAM on the client listener, mutual TLS between broker and controller,
    and an authorizer that denies what no ACL allows."""
    return {
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(security.keystore),
        "ssl.keystore.password": security.keystore_password,
        "ssl.key.password": security.keystore_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.ca_pem),
        "ssl.endpoint.identification.algorithm": "https",
        # Clients authenticate with SASL; a client certificate, when sent, must still verify.
        "listener.name.sasl_ssl.ssl.client.auth": "requested",
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{security.admin};{security.broker_principal}",
    }


def broker_properties(
    port: int,
    controller_port: int,
    log_dir: Path,
    security: BrokerSecurity | None = None,
    internal_port: int | None = None,
) -> dict[str, str]:
    """Configuration of a combined broker+controller node with replication factor 1 everywhere.

    With ``security`` the node also needs ``internal_port`` (its mutual-TLS inter-broker
    listener)."""
    if security is not None and internal_port is None:
        raise ValueError("a secured node needs an internal (inter-broker) port")
    secured = security is not None
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        **_listeners(port, controller_port, internal_port if secured else None),
        "controller.listener.names": "CONTROLLER",
        **(security_properties(security) if security is not None else {}),
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
    path.touch(mode=0o600)  # a secured node's file holds its keystore password
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
