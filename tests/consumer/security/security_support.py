"""The secured broker for the `security` tests: TLS material, SCRAM users, ACL grants, and
clients that authenticate as the admin (the test harness) or as a scorer principal.

Every secret is random per session so a leak check can search the captured output for it.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from consumer.clock import SystemClock
from consumer.devtools.generator import produce_jobs
from consumer.devtools.kafka_node import BrokerSecurity
from consumer.devtools.kafka_tls import TlsMaterial, make_tls_material
from consumer.devtools.local_kafka import LocalKafka, default_cache_dir
from consumer.security.acls import AclRule, apply_acls
from schemas.records import ScoringJob
from schemas.registry import StaticRegistry
from schemas.serde import JobEncoder
from tests.consumer.kafka_support import read_all

USERS = (
    "admin",
    "scorer-alo",
    "scorer-eos",
    "scorer-nowrite-at_least_once",
    "scorer-nowrite-at_least_once-dlq",
    "scorer-nowrite-exactly_once",
)


@dataclass(frozen=True, slots=True)
class SecuredCluster:
    kafka: LocalKafka
    security: BrokerSecurity
    tls: TlsMaterial
    root: Path

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def admin(self) -> dict[str, str]:
        return self.kafka.admin_properties

    def password(self, user: str) -> str:
        return self.security.users[user]

    def secret_file(self, name: str, value: str) -> Path:
        """A file holding one secret, as a mounted Kubernetes Secret would."""
        path = self.root / "secrets" / f"{name}-{uuid.uuid4().hex[:8]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(value + "\n")
        return path

    def grant(self, user: str, rules: Sequence[AclRule]) -> None:
        apply_acls(self.bootstrap, self.admin, f"User:{user}", rules)


@contextmanager
def secured_cluster(root: Path) -> Iterator[SecuredCluster]:
    """A SASL_SSL + StandardAuthorizer broker with fresh TLS material and random passwords."""
    tls = make_tls_material(root / "tls", secrets.token_urlsafe(18))
    users = {user: secrets.token_urlsafe(18) for user in USERS}
    security = BrokerSecurity(
        tls.ca_pem, tls.broker_keystore, tls.password, tls.broker_principal, users
    )
    kafka = LocalKafka(default_cache_dir({}), data_dir=root / "kafka", security=security)
    with kafka:
        yield SecuredCluster(kafka, security, tls, root)


def produce_as_admin(cluster: SecuredCluster, topic: str, jobs: list[ScoringJob]) -> None:
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 5, **cluster.admin})
    produce_jobs(
        producer, topic, JobEncoder(StaticRegistry()), iter(jobs), SystemClock(), stamp=False
    )


def read_all_as_admin(
    cluster: SecuredCluster, topic: str, idle_s: float = 3.0, timeout_s: float = 90.0
) -> list[Message]:
    """Every committed record of ``topic``, until nothing new arrived for ``idle_s``."""
    return read_all(cluster.bootstrap, topic, idle_s=idle_s, timeout_s=timeout_s,
                    properties=cluster.admin)  # fmt: skip


def committed_offsets(
    cluster: SecuredCluster, group: str, topic: str, partitions: int
) -> dict[int, int]:
    """The group's committed offset per partition (negative = none), read as the admin.

    Through a consumer that never joins the group: librdkafka 2.16's admin
    ListConsumerGroupOffsets crashed the interpreter (a NULL group handle in
    rd_kafka_handle_OffsetFetch) for a group that had never committed.
    """
    consumer = Consumer({
        "bootstrap.servers": cluster.bootstrap, "group.id": group,
        "enable.auto.commit": False, "log_level": 0, **cluster.admin,
    })  # fmt: skip
    tps = [KafkaTopicPartition(topic, p) for p in range(partitions)]
    try:
        for attempt in range(20):  # NOT_COORDINATOR while __consumer_offsets is being created
            try:
                return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=15)}
            except KafkaException:
                if attempt == 19:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")
    finally:
        consumer.close()


def end_offsets(cluster: SecuredCluster, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({
        "bootstrap.servers": cluster.bootstrap, "group.id": f"probe-{uuid.uuid4()}",
        **cluster.admin,
    })  # fmt: skip
    try:
        return {
            p: consumer.get_watermark_offsets(KafkaTopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def scorer_security_env(
    cluster: SecuredCluster, user: str, password_file: Path, key_password_file: Path
) -> dict[str, str]:
    """The scorer's ``STREAM_SCORER__*`` settings (prefix omitted) for the SASL_SSL listener:
    common properties for every client, passwords from files, a client certificate whose key
    is encrypted, and librdkafka's security/broker/config debug output switched on."""
    tls = cluster.tls
    return {
        "KAFKA_COMMON__SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_COMMON__SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_COMMON__SASL_USERNAME": user,
        "KAFKA_COMMON__SSL_CA_LOCATION": str(tls.ca_pem),
        "KAFKA_COMMON__SSL_CERTIFICATE_LOCATION": str(tls.client_cert_pem),
        "KAFKA_COMMON__SSL_KEY_LOCATION": str(tls.client_key_pem),
        "KAFKA_COMMON__SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "https",
        "KAFKA_COMMON__DEBUG": "security,broker,conf",
        "KAFKA_SECRET_FILES__SASL_PASSWORD": str(password_file),
        "KAFKA_SECRET_FILES__SSL_KEY_PASSWORD": str(key_password_file),
    }


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")


def http_post(
    url: str, body: bytes, headers: Mapping[str, str], timeout_s: float = 10.0
) -> tuple[int, str]:
    request = urllib.request.Request(url, body, dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")


def leaked(secrets_: Mapping[str, str], texts: Mapping[str, str]) -> list[str]:
    """``"<secret name> in <text name>"`` for every secret found in any text."""
    return [
        f"{name} in {where}"
        for name, value in secrets_.items()
        for where, text in texts.items()
        if value and value in text
    ]
