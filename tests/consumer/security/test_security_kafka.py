"""The scorer on a secured Apache Kafka broker: SASL_SSL (SCRAM-SHA-512, TLS with hostname
verification), the KRaft StandardAuthorizer denying whatever no ACL allows, and exactly the ACLs
`consumer.security.acls.scorer_acls` documents.

One broker serves the module (`cluster`); each test has its own topics, group and principal.
Every scorer runs at DEBUG with librdkafka's security, broker and config debugging on, and each
test asserts that no secret (SASL password, key password, API token, registry URL password)
appears in its output, metrics, or HTTP answers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError

from consumer.config import Config, load_config
from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.kafka_node import free_ports
from consumer.devtools.kafka_tls import issue, make_ca, write_cert, write_key
from consumer.devtools.ranked_reader import headers_of
from consumer.security.acls import scorer_acls
from schemas.records import ScoringJob
from tests.consumer.kafka_support import Topics, make_jobs, wait_until
from tests.consumer.scorer_process import ScorerProcess, ScorerSpec
from tests.consumer.security.security_support import (
    SecuredCluster,
    committed_offsets,
    http_get,
    http_post,
    leaked,
    produce_as_admin,
    read_all_as_admin,
    scorer_security_env,
    secured_cluster,
)
from tests.schemas.auth_registry import AuthRegistry, basic, serving

pytestmark = [pytest.mark.kafka, pytest.mark.security, pytest.mark.slow]
PARTITIONS = 2
EXIT_BOUND_S = 8  # kafka.auth_failure_exit_s in the failure tests
MODES = ["at_least_once", "exactly_once"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        pytest.skip("KAFKA_BOOTSTRAP is set: the security tests need a secured broker of their own")
    with secured_cluster(tmp_path_factory.mktemp("secured")) as started:
        yield started


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root: Path = tmp_path_factory.mktemp("security-data")
    return write_demo_data(root, n_items=2_000, n_users=200, seed=5, hash_bits=16)


def new_topics(cluster: SecuredCluster, unique_name: Callable[[str], str]) -> Topics:
    t = Topics(unique_name("jobs"), unique_name("ranked"), unique_name("group"))
    cluster.kafka.create_topics([t.jobs, t.ranked], PARTITIONS)
    return t


class Run:
    """One scorer process for a test, with the secrets it was given (for the leak check)."""

    def __init__(
        self, cluster: SecuredCluster, data: DemoData, topics: Topics, tmp_path: Path,
        user: str, password: str, mode: str = "at_least_once", password_in_env: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        extra = extra or {}
        self.cluster = cluster
        self.server_port = free_ports(1)[0]
        self.secrets = {
            f"sasl password of {user}": password,
            "client key password": cluster.tls.password,
        }
        env = scorer_security_env(
            cluster, user, cluster.secret_file("sasl", password),
            cluster.secret_file("key", cluster.tls.password),
        )  # fmt: skip
        if password_in_env:  # the other way in: STREAM_SCORER__KAFKA_COMMON__SASL_PASSWORD
            del env["KAFKA_SECRET_FILES__SASL_PASSWORD"]
            env["KAFKA_COMMON__SASL_PASSWORD"] = password
        env.update({"SERVER__ENABLED": "true", "SERVER__HOST": "127.0.0.1",
                    "SERVER__PORT": str(self.server_port), **extra})  # fmt: skip
        self.spec = ScorerSpec(
            cluster.bootstrap, topics.jobs, topics.ranked, topics.group, data, mode=mode,
            dead_letter_topic=extra.get("DELIVERY__DEAD_LETTER_TOPIC", ""), extra=env,
        )  # fmt: skip
        self.log_dir = tmp_path / "scorers"
        self.process: ScorerProcess | None = None

    def config(self) -> Config:
        """The configuration the scorer process builds from its environment."""
        return load_config(self.spec.environ(0))

    def start(self) -> ScorerProcess:
        self.process = ScorerProcess(self.spec, self.log_dir, log_level="DEBUG")
        return self.process

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"

    def output(self) -> str:
        assert self.process is not None
        return self.process.log_path.read_text(errors="replace")


def assert_no_secret(secrets_: dict[str, str], **texts: str) -> None:
    assert all(texts.values()), "nothing captured to check"
    assert leaked(secrets_, texts) == []


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def total_committed(cluster: SecuredCluster, t: Topics) -> int:
    offsets = committed_offsets(cluster, t.group, t.jobs, PARTITIONS)
    return sum(max(o, 0) for o in offsets.values())


def rank_body(job: ScoringJob) -> bytes:
    candidates = [int(c) for c in job.candidates[:20]]
    body = {"user_id": job.user_id, "model": job.model, "candidates": candidates, "top_k": 3}
    return json.dumps(body).encode()


# -- 1 + 5: both delivery modes end to end with exactly the documented ACLs ------------------


@pytest.mark.parametrize("mode", MODES)
def test_scores_end_to_end_over_sasl_ssl_with_only_the_documented_acls(
    cluster: SecuredCluster, data: DemoData, tmp_path: Path,
    unique_name: Callable[[str], str], mode: str,
) -> None:  # fmt: skip
    t = new_topics(cluster, unique_name)
    dlq = unique_name("dlq")
    cluster.kafka.create_topics([dlq], 1)
    user = "scorer-alo" if mode == "at_least_once" else "scorer-eos"
    token, url_password = secrets.token_urlsafe(24), secrets.token_urlsafe(18)
    tokens_file = cluster.secret_file("api-tokens", f"# callers\n{token}")
    registry = AuthRegistry(basic("registry-user", url_password))
    with serving(registry):
        api_port = free_ports(1)[0]
        run = Run(
            cluster, data, t, tmp_path, user, cluster.password(user), mode, extra={
                "DELIVERY__DEAD_LETTER_TOPIC": dlq,
                "SCHEMAS__REGISTRY_URL":
                    registry.url.replace("://", f"://registry-user:{url_password}@"),
                "API__ENABLED": "true", "API__HOST": "127.0.0.1", "API__PORT": str(api_port),
                "API__TOKENS_FILE": str(tokens_file),
            },
        )  # fmt: skip
        run.secrets |= {"API token": token, "registry URL password": url_password}
        rules = scorer_acls(run.config())
        assert {(r.resource, r.operation) for r in rules} >= {("topic", "READ"), ("group", "READ")}
        cluster.grant(user, rules)

        jobs = make_jobs(data, 120, seed=3)
        produce_as_admin(cluster, t.jobs, jobs)
        poison = [b"\x00\x00\x00\x00\x01 not avro at all"]
        _produce_raw(cluster, t.jobs, poison)
        scorer = run.start()
        wait_until(lambda: total_committed(cluster, t) == len(jobs) + 1 or not scorer.alive(), 90)
        assert scorer.alive(), scorer.log_tail()

        rank = f"http://127.0.0.1:{api_port}/v1/rank"
        content = {"Content-Type": "application/json"}
        ok = http_post(rank, rank_body(jobs[0]), content | {"Authorization": f"Bearer {token}"})
        missing = http_post(rank, rank_body(jobs[0]), content)
        wrong = http_post(rank, rank_body(jobs[0]), content | {"Authorization": "Bearer nope"})
        ready = http_get(run.url("/readyz"))
        metrics = http_get(run.url("/metrics"))[1]
        code, _seconds = scorer.terminate()

    assert ok[0] == 200, ok
    assert len(json.loads(ok[1])["items"]) == 3
    assert missing[0] == wrong[0] == 401
    assert json.loads(wrong[1])["error"] == "unauthorized"
    assert ready[0] == 200
    assert code == 0, scorer.log_tail()
    seen = [headers_of(m)["request_id"].decode() for m in read_all_as_admin(cluster, t.ranked)]
    assert set(seen) == {j.request_id for j in jobs}, "every job has its ranked list"
    if mode == "exactly_once":
        assert len(seen) == len(jobs)
    assert len(read_all_as_admin(cluster, dlq, idle_s=1.0)) == 1
    assert any(a is not None and a.startswith("Basic ") for a in registry.seen)
    assert 'kind="kafka_authentication"' not in metrics
    assert_no_secret(run.secrets, log=run.output(), metrics=metrics, api_ok=ok[1],
                     api_missing=missing[1], api_wrong=wrong[1])  # fmt: skip


def _produce_raw(cluster: SecuredCluster, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": cluster.bootstrap, **cluster.admin})
    for value in values:
        producer.produce(topic, value=value, key=b"raw")
    assert producer.flush(30) == 0


# -- 2: a wrong password ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_wrong_password_one_line_not_ready_nothing_committed_exits_within_bound(
    cluster: SecuredCluster, data: DemoData, tmp_path: Path,
    unique_name: Callable[[str], str], mode: str,
) -> None:  # fmt: skip
    t = new_topics(cluster, unique_name)
    wrong = secrets.token_urlsafe(18)
    user = "scorer-alo" if mode == "at_least_once" else "scorer-eos"
    run = Run(cluster, data, t, tmp_path, user, wrong, mode, password_in_env=True,
              extra={"KAFKA__AUTH_FAILURE_EXIT_S": str(EXIT_BOUND_S)})  # fmt: skip
    run.secrets["real password"] = cluster.password(user)
    cluster.grant(user, scorer_acls(run.config()))
    produce_as_admin(cluster, t.jobs, make_jobs(data, 20, seed=4))

    started = time.monotonic()
    scorer = run.start()
    readiness: list[int] = []
    metrics: list[str] = []
    while scorer.alive() and time.monotonic() - started < EXIT_BOUND_S + 30:
        try:
            readiness.append(http_get(run.url("/readyz"), 1.0)[0])
            metrics.append(http_get(run.url("/metrics"), 1.0)[1])
        except OSError:
            pass  # not listening yet, or already gone
        time.sleep(0.3)
    code = scorer.reap()
    elapsed = time.monotonic() - started
    out = run.output()

    assert code != 0
    assert elapsed < EXIT_BOUND_S + 20, f"exited after {elapsed:.1f} s"
    assert readiness
    assert set(readiness) == {503}
    said = lines_with(out, f"Kafka authentication failed as user '{user}'")
    assert len(said) == 1, out[-3000:]
    assert "invalid credentials" in said[0]
    assert f"exiting in {EXIT_BOUND_S} s" in said[0]
    not_debug = outside_debug_records(out)
    assert len([ln for ln in not_debug if "SASL authentication error" in ln]) <= 2, not_debug
    assert any('kafka_authentication"} 1.0' in m for m in metrics)
    assert total_committed(cluster, t) == 0
    assert_no_secret(run.secrets, log=out, metrics="\n".join(metrics))


# -- 3: no WRITE on the output topic ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "with_dlq"),
    # Without any WRITE the idempotent producer cannot even get its producer id (Kafka grants
    # IDEMPOTENT_WRITE through WRITE on any topic); with WRITE on the dead-letter topic it can,
    # and the output topic itself refuses the records.
    [("at_least_once", False), ("at_least_once", True), ("exactly_once", False)],
)
def test_missing_write_acl_clear_error_no_commit_past_unwritten_then_grant_loses_nothing(
    cluster: SecuredCluster, data: DemoData, tmp_path: Path,
    unique_name: Callable[[str], str], mode: str, with_dlq: bool,
) -> None:  # fmt: skip
    t = new_topics(cluster, unique_name)
    user = f"scorer-nowrite-{mode}{'-dlq' if with_dlq else ''}"
    extra = {"KAFKA__AUTH_FAILURE_EXIT_S": str(EXIT_BOUND_S)}
    if with_dlq:
        extra["DELIVERY__DEAD_LETTER_TOPIC"] = unique_name("dlq")
        cluster.kafka.create_topics([extra["DELIVERY__DEAD_LETTER_TOPIC"]], 1)
    run = Run(cluster, data, t, tmp_path, user, cluster.password(user), mode, extra=extra)
    rules = scorer_acls(run.config())
    output_write = [r for r in rules if r.resource == "topic" and r.name == t.ranked]
    assert len(output_write) == 1
    cluster.grant(user, [r for r in rules if r not in output_write])
    jobs = make_jobs(data, 60, seed=6)
    produce_as_admin(cluster, t.jobs, jobs)

    scorer = run.start()
    wait_until(lambda: not scorer.alive(), EXIT_BOUND_S + 60)
    code = scorer.reap()
    first = run.output()
    assert code != 0
    refused = lines_with(first, "not authorized to write")
    assert refused, first[-3000:]
    assert "grant WRITE on" in refused[-1]
    if with_dlq:
        assert f"topic '{t.ranked}'" in refused[-1]
    assert total_committed(cluster, t) == 0, (
        "an input offset was committed past an unwritten output"
    )
    assert read_all_as_admin(cluster, t.ranked, idle_s=1.0) == []

    cluster.grant(user, output_write)
    scorer = run.start()
    wait_until(lambda: total_committed(cluster, t) == len(jobs) or not scorer.alive(), 90)
    code, _ = scorer.terminate()
    assert code == 0, scorer.log_tail()
    seen = [headers_of(m)["request_id"].decode() for m in read_all_as_admin(cluster, t.ranked)]
    assert set(seen) == {j.request_id for j in jobs}, "a job was lost"
    if mode == "exactly_once":
        assert len(seen) == len(jobs), "the refused transaction must not show"
    assert_no_secret(run.secrets, first_run=first, second_run=run.output())


# -- 4: an untrusted broker certificate ------------------------------------------------------


def test_untrusted_broker_certificate_is_refused(
    cluster: SecuredCluster, data: DemoData, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    t = new_topics(cluster, unique_name)
    rogue_ca = write_cert(tmp_path / "rogue-ca.pem", make_ca("rogue CA").cert)
    run = Run(cluster, data, t, tmp_path, "scorer-alo", cluster.password("scorer-alo"),
              extra={"KAFKA__AUTH_FAILURE_EXIT_S": str(EXIT_BOUND_S),
                     "KAFKA_COMMON__SSL_CA_LOCATION": str(rogue_ca)})  # fmt: skip
    cluster.grant("scorer-alo", scorer_acls(run.config()))
    produce_as_admin(cluster, t.jobs, make_jobs(data, 10, seed=8))
    scorer = run.start()
    wait_until(lambda: not scorer.alive(), EXIT_BOUND_S + 40)
    code = scorer.reap()
    out = run.output()
    assert code != 0
    said = lines_with(out, "Kafka tls failed")
    assert len(said) == 1, out[-3000:]
    assert "certificate verify failed" in said[0]
    assert total_committed(cluster, t) == 0
    assert_no_secret(run.secrets, log=out)


def test_broker_certificate_for_another_host_is_refused(
    cluster: SecuredCluster, tmp_path: Path
) -> None:
    """Hostname verification: a certificate from a trusted CA, but for another name, is refused;
    the same certificate is accepted once the name check is switched off (the control)."""
    ca = make_ca("hostname test CA")
    leaf = issue(ca, "elsewhere", ("elsewhere.example",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(write_cert(tmp_path / "leaf.pem", leaf.cert),
                            write_key(tmp_path / "leaf.key", leaf.key, "pw"), "pw")  # fmt: skip
    trusted = cluster.security.client_properties("scorer-alo") | {
        "ssl.ca.location": str(write_cert(tmp_path / "ca.pem", ca.cert))
    }
    with _tls_listener(context) as (port, handshakes):
        refused = _ssl_errors(f"127.0.0.1:{port}", trusted, lambda: False)
        assert refused
        assert "certificate verify failed" in refused[0], refused
        assert handshakes == []
        unchecked = trusted | {"ssl.endpoint.identification.algorithm": "none"}
        _ssl_errors(f"127.0.0.1:{port}", unchecked, lambda: bool(handshakes))
        assert handshakes, "control: without the name check the same certificate is accepted"


@contextmanager
def _tls_listener(context: ssl.SSLContext) -> Iterator[tuple[int, list[str]]]:
    """A TLS server on loopback recording each completed handshake."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    handshakes: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    handshakes.append(tls.version() or "")
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], handshakes
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _ssl_errors(
    bootstrap: str, props: dict[str, str], done: Callable[[], bool], wait_s: float = 10.0
) -> list[str]:
    """TLS errors a client reports within ``wait_s`` (or until the first one, or ``done``)."""
    errors: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._SSL:
            errors.append(err.str())

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tls-probe",
                         "error_cb": on_error, "log_level": 0, **props})  # fmt: skip
    deadline = time.monotonic() + wait_s
    try:
        while not errors and not done() and time.monotonic() < deadline:
            consumer.poll(0.2)
    finally:
        consumer.close()
    return errors


RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([A-Z]+) ")


def outside_debug_records(out: str) -> list[str]:
    """The lines of `out` that do not belong to a DEBUG record (a record's traceback lines
    belong to it)."""
    kept: list[str] = []
    debug = False
    for line in out.splitlines():
        start = RECORD_START.match(line)
        if start:
            debug = start.group(1) == "DEBUG"
        if not debug:
            kept.append(line)
    return kept
