"""load_config: defaults, TOML, environment overrides, pass-through properties, validation."""

from __future__ import annotations

import pytest

from consumer.config import load_config
from consumer.errors import ConfigError

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


def test_snapshot_keys_default_and_override() -> None:
    config = load_config({})
    assert (config.features.snapshot_format, config.features.snapshot_reload_interval_s) == (
        "auto", 5,
    )  # fmt: skip
    env = {"STREAM_SCORER__FEATURES__SNAPSHOT_RELOAD_INTERVAL_S": "0"}
    config = load_config(env, '[features]\nsnapshot_format = "parquet"\n')
    assert config.features.snapshot_format == "parquet"
    assert config.features.snapshot_reload_interval_s == 0
