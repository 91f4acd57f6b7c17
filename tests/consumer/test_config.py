"""load_config: defaults, TOML, environment overrides, pass-through properties, validation."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from consumer.config import (
    ApiConfig,
    BatchConfig,
    DeliveryConfig,
    FeatureConfig,
    KafkaConfig,
    LimitsConfig,
    ModelConfig,
    SchemaConfig,
    ServerConfig,
    client_properties,
    load_config,
)
from consumer.errors import ConfigError
from consumer.wiring import kafka_properties, kafka_secrets

TOML = """
[kafka]
bootstrap_servers = "broker:9092"
input_topic = "jobs"

[kafka.consumer]
"session.timeout.ms" = 6000

[batch]
max_jobs = 64
"""


def test_defaults_without_file() -> None:
    config = load_config({})
    assert config.kafka.input_topic == "scoring-jobs"
    assert config.batch.max_jobs == 512
    assert config.schemas.registry_url == ""


def test_file_values_and_passthrough_properties() -> None:
    config = load_config({}, TOML, "/etc/scorer")
    assert config.kafka.bootstrap_servers == "broker:9092"
    assert config.kafka.input_topic == "jobs"
    assert config.kafka.consumer == {"session.timeout.ms": "6000"}
    assert config.batch.max_jobs == 64
    assert str(config.path("models")) == "/etc/scorer/models"
    assert str(config.path("/abs/models")) == "/abs/models"


def test_environment_overrides_file() -> None:
    env = {
        "STREAM_SCORER__KAFKA__BOOTSTRAP_SERVERS": "other:1",
        "STREAM_SCORER__BATCH__MAX_JOBS": "128",
        "STREAM_SCORER__SERVER__ENABLED": "false",
        "STREAM_SCORER__KAFKA_PRODUCER__LINGER_MS": "20",
        "UNRELATED": "x",
    }
    config = load_config(env, TOML)
    assert config.kafka.bootstrap_servers == "other:1"
    assert config.batch.max_jobs == 128
    assert config.server.enabled is False
    assert config.kafka.producer == {"linger.ms": "20"}


def test_secrets_are_masked_in_repr() -> None:
    config = load_config({"STREAM_SCORER__KAFKA_CONSUMER__SASL_PASSWORD": "hunter2"})
    assert config.kafka.consumer["sasl.password"] == "hunter2"
    assert "hunter2" not in repr(config)
    assert "***" in repr(config)


@pytest.mark.parametrize(
    ("env", "text", "match"),
    [
        ({}, "[nope]\nx = 1\n", "unknown section"),
        ({}, "[batch]\nmax_jobz = 1\n", "unknown key"),
        ({}, "[batch]\nmax_jobs = 0\n", "batch.max_jobs"),
        ({"STREAM_SCORER__BATCH__MAX_JOBS": "many"}, "", "expected an integer"),
        ({"STREAM_SCORER__BATCH": "1"}, "", "STREAM_SCORER__<SECTION>__<KEY>"),
        ({}, "[kafka\n", "invalid TOML"),
        ({}, '[features]\nsource = "redis"\n', "features.source"),
        ({}, "[server]\nenabled = 3\n", "expected a boolean"),
        ({}, '[features]\nsnapshot_format = "orc"\n', "features.snapshot_format"),
        (
            {"STREAM_SCORER__FEATURES__SNAPSHOT_RELOAD_INTERVAL_S": "-1"},
            "",
            "features.snapshot_reload_interval_s",
        ),
    ],
)
def test_invalid_configuration_is_a_config_error(
    env: dict[str, str], text: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(env, text)


COMMON = """
[kafka.common]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "scorer"
"linger.ms" = "1"

[kafka.producer]
"linger.ms" = "5"

[kafka.secret_files]
"sasl.password" = "secrets/kafka-password"
"""


def test_common_properties_reach_every_client_and_per_client_sections_win() -> None:
    config = load_config({}, COMMON)
    secrets = {"sasl.password": "from-file"}
    consumer = client_properties(config.kafka, "consumer", secrets)
    producer = client_properties(config.kafka, "producer", secrets)
    admin = client_properties(config.kafka, "", secrets)
    for props in (consumer, producer, admin):
        assert props["security.protocol"] == "SASL_SSL"
        assert props["sasl.mechanism"] == "SCRAM-SHA-512"
        assert props["sasl.password"] == "from-file"
    assert producer["linger.ms"] == "5"  # [kafka.producer] overrides [kafka.common]
    assert consumer["linger.ms"] == admin["linger.ms"] == "1"
    with pytest.raises(ValueError, match="unknown Kafka client"):
        client_properties(config.kafka, "streams")


def test_common_and_secret_files_from_the_environment() -> None:
    env = {
        "STREAM_SCORER__KAFKA_COMMON__SSL_CA_LOCATION": "/etc/ca.pem",
        "STREAM_SCORER__KAFKA_SECRET_FILES__SSL_KEY_PASSWORD": "/run/secrets/key-password",
    }
    config = load_config(env)
    assert config.kafka.common == {"ssl.ca.location": "/etc/ca.pem"}
    assert config.kafka.secret_files == {"ssl.key.password": "/run/secrets/key-password"}


def test_secret_files_are_read_relative_to_the_config_without_their_newline(
    tmp_path: Path,
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "kafka-password").write_text("s3cr3t\n")
    config = load_config({}, COMMON, str(tmp_path))
    assert kafka_secrets(config) == {"sasl.password": "s3cr3t"}
    assert kafka_properties(config, "consumer")["sasl.password"] == "s3cr3t"
    assert "s3cr3t" not in repr(config)


def test_a_missing_secret_file_names_the_key_and_the_file_only(tmp_path: Path) -> None:
    config = load_config({}, COMMON, str(tmp_path))
    with pytest.raises(ConfigError, match=r"kafka\.secret_files\.sasl\.password") as info:
        kafka_secrets(config)
    assert "kafka-password" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        ("KAFKA_COMMON__SASL_PASSWORD", "pw-common-1", "pw-common-1"),
        ("KAFKA_PRODUCER__SSL_KEY_PASSWORD", "pw-key-2", "pw-key-2"),
        ("KAFKA_COMMON__SSL_KEY_PEM", "-----BEGIN PRIVATE KEY-----xyz", "xyz"),
        ("KAFKA_COMMON__SASL_OAUTHBEARER_CLIENT_SECRET", "oauth-3", "oauth-3"),
        ("SCHEMAS__BASIC_AUTH_USER_INFO", "user:basic-4", "basic-4"),
        ("SCHEMAS__TOKEN", "bearer-5", "bearer-5"),
        ("SCHEMAS__REGISTRY_URL", "https://user:url-6@registry:8081", "url-6"),
        ("FEATURES__URL", "https://feast:url-7@feast:6566", "url-7"),
        ("FEATURES__TOKEN", "feast-8", "feast-8"),
    ],
)
def test_no_secret_in_the_config_repr(key: str, value: str, secret: str) -> None:
    config = load_config({f"STREAM_SCORER__{key}": value})
    shown = repr(config)
    assert secret not in shown
    assert "***" in shown


def test_urls_keep_everything_but_their_credentials_in_the_repr() -> None:
    config = load_config({"STREAM_SCORER__SCHEMAS__REGISTRY_URL": "https://u:p@registry:8081/x"})
    assert "https://***@registry:8081/x" in repr(config)
    assert "u:p" not in repr(config)


# Strict types: a value of the wrong type is an error naming the key, never converted.
@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "[batch]\nmax_jobs = 12.7\n",
            r"batch.max_jobs: expected an integer, got a float \(12.7\)",
        ),
        ("[batch]\nmax_jobs = true\n", r"batch.max_jobs: expected an integer, got a boolean"),
        ('[batch]\nmax_jobs = "12"\n', r"batch.max_jobs: expected an integer, got a string"),
        ("[server]\nenabled = 1\n", r"server.enabled: expected a boolean .*got an integer"),
        ('[server]\nenabled = "yes"\n', r"server.enabled: expected a boolean"),
        ("[kafka]\ninput_topic = 5\n", r"kafka.input_topic: expected a string, got an integer"),
        ('[kafka]\ninput_topic = ["a"]\n', r"kafka.input_topic: expected a string, got an array"),
        ("[kafka]\nbootstrap_servers = 5\n", r"kafka.bootstrap_servers: expected a string or an"),
        ('[kafka]\nbootstrap_servers = ["a:1", 2]\n', r"kafka.bootstrap_servers: expected a"),
        ("[kafka]\nbootstrap_servers = []\n", r"kafka.bootstrap_servers: expected a string or"),
        ("[kafka.consumer]\nsession.timeout.ms = 6000\n", r'kafka.consumer."session".*quote'),
        ('[kafka.consumer]\n"fetch.wait.max.ms" = 1.5\n', r'"fetch.wait.max.ms": expected a'),
        ('[kafka.producer]\n"linger.ms" = [1]\n', r'kafka.producer."linger.ms": expected a'),
        ("[models.shadow]\nctr = 1\n", r'models.shadow."ctr": expected a string'),
        ("kafka = 3\n", r"kafka: must be a table"),
    ],
)
def test_values_of_the_wrong_type_are_refused(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config({}, text)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STREAM_SCORER__BATCH__MAX_JOBS", "12.7"),
        ("STREAM_SCORER__BATCH__MAX_JOBS", "1_000"),
        ("STREAM_SCORER__BATCH__MAX_JOBS", "0x10"),
        ("STREAM_SCORER__SERVER__ENABLED", "maybe"),
    ],
)
def test_environment_values_are_parsed_strictly(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})


def test_bootstrap_servers_may_be_a_list_and_librdkafka_values_keep_their_spelling() -> None:
    config = load_config(
        {},
        '[kafka]\nbootstrap_servers = ["a:1", "b:2"]\n'
        '[kafka.consumer]\n"enable.partition.eof" = true\n"enable.auto.commit" = false\n'
        '"fetch.wait.max.ms" = 10\n',
    )
    assert config.kafka.bootstrap_servers == "a:1,b:2"
    assert config.kafka.consumer == {
        "enable.partition.eof": "true",  # librdkafka's spelling, not Python's "True"
        "enable.auto.commit": "false",
        "fetch.wait.max.ms": "10",
    }
    env = {"STREAM_SCORER__BATCH__MAX_JOBS": " 64", "STREAM_SCORER__SERVER__ENABLED": "Off"}
    parsed = load_config(env)
    assert (parsed.batch.max_jobs, parsed.server.enabled) == (64, False)


_SECTIONS = {
    "kafka": KafkaConfig, "batch": BatchConfig, "limits": LimitsConfig, "schemas": SchemaConfig,
    "models": ModelConfig, "features": FeatureConfig, "delivery": DeliveryConfig,
    "api": ApiConfig, "server": ServerConfig,
}  # fmt: skip


def _integer_keys() -> list[str]:
    keys = []
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            default = getattr(cls(), f.name)
            if isinstance(default, int) and not isinstance(default, bool):
                keys.append(f"{section}.{f.name}")
    return keys


@pytest.mark.parametrize("key", _integer_keys())
def test_every_integer_key_has_a_lower_bound(key: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: must be"):
        load_config({}, f"[{section}]\n{name} = -1\n")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[batch]\nmax_jobs = 1000001\nmax_in_flight_jobs = 2000000\n", "batch.max_jobs: must be"),
        ("[schemas]\njob_schema_id = 2147483648\n", "schemas.job_schema_id: must be <="),
        ("[schemas]\njob_schema_id = 2\n", "schemas.ranked_schema_id: must differ"),
        ('[kafka]\nbootstrap_servers = ""\n', "kafka.bootstrap_servers: must not be empty"),
    ],
)
def test_values_the_service_cannot_use_are_refused(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config({}, text)


# Properties correctness depends on: refused with the reason, in the file or the environment.
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[kafka.consumer]\n"enable.auto.commit" = true\n', "after a job's outputs"),
        ('[kafka.consumer]\n"enable.auto.commit" = "TRUE"\n', "enable.auto.commit"),
        ('[kafka.consumer]\n"enable.auto.offset.store" = "true"\n', "explicit offsets"),
        ('[kafka.consumer]\n"group.id" = "g"\n', "set kafka.group_id instead"),
        ('[kafka.consumer]\n"bootstrap.servers" = "x:1"\n', "set kafka.bootstrap_servers"),
        ('[kafka.consumer]\n"statistics.interval.ms" = 0\n', "broker connection state"),
        ('[kafka.producer]\n"enable.idempotence" = false\n', "duplicate or reorder"),
        ('[kafka.producer]\n"acks" = "1"\n', "every in-sync replica"),
        ('[kafka.producer]\n"request.required.acks" = 0\n', "every in-sync replica"),
        ('[kafka.producer]\n"transactional.id" = "t"\n', "delivery.transactional_id"),
        (
            '[delivery]\nmode = "exactly_once"\n'
            '[kafka.consumer]\n"isolation.level" = "read_uncommitted"\n',
            "aborted upstream transaction",
        ),
    ],
)
def test_properties_correctness_depends_on_are_refused(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config({}, text)


def test_refusal_names_the_table_and_property_and_applies_to_the_environment() -> None:
    env = {"STREAM_SCORER__KAFKA_CONSUMER__ENABLE_AUTO_COMMIT": "true"}
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert caught.value.key == 'kafka.consumer."enable.auto.commit"'
    assert str(caught.value).startswith("kafka.consumer.\"enable.auto.commit\": 'true' is refused")


def test_values_the_service_needs_anyway_are_accepted() -> None:
    config = load_config(
        {},
        '[kafka.consumer]\n"enable.auto.commit" = false\n"isolation.level" = "read_uncommitted"\n'
        '"statistics.interval.ms" = 500\n[kafka.producer]\n"enable.idempotence" = true\n'
        '"acks" = "all"\n',
    )
    assert config.kafka.consumer["isolation.level"] == "read_uncommitted"  # at-least-once: free
    assert config.kafka.producer["acks"] == "all"


def test_snapshot_keys_default_and_override() -> None:
    config = load_config({})
    assert (config.features.snapshot_format, config.features.snapshot_reload_interval_s) == (
        "auto", 5,
    )  # fmt: skip
    env = {"STREAM_SCORER__FEATURES__SNAPSHOT_RELOAD_INTERVAL_S": "0"}
    config = load_config(env, '[features]\nsnapshot_format = "parquet"\n')
    assert config.features.snapshot_format == "parquet"
    assert config.features.snapshot_reload_interval_s == 0
