"""One frozen configuration object, built once by the pure `load_config(environ, text)`.

Sources, later wins: built-in defaults, the TOML file, environment variables named
``STREAM_SCORER__<SECTION>__<KEY>`` (e.g. ``STREAM_SCORER__KAFKA__BOOTSTRAP_SERVERS``).
Raw librdkafka properties live in ``[kafka.consumer]`` / ``[kafka.producer]`` (env:
``STREAM_SCORER__KAFKA_CONSUMER__SESSION_TIMEOUT_MS`` -> ``session.timeout.ms``) and pass straight
through. Values that look like secrets are masked in ``repr``. Nothing here reads the process
environment or the file system except `read_config_file`, called by the entry point.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from consumer.errors import ConfigError

ENV_PREFIX = "STREAM_SCORER__"
_SECRET_MARKERS = ("password", "secret", "token", "key.pem", "sasl.oauthbearer")


def _mask(props: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if any(m in k for m in _SECRET_MARKERS) else v) for k, v in props.items()}


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "scoring-jobs"
    output_topic: str = "ranked-lists"
    group_id: str = "stream-scorer"
    consumer: Mapping[str, str] = field(default_factory=dict)
    producer: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"KafkaConfig(bootstrap_servers={self.bootstrap_servers!r}, "
            f"input_topic={self.input_topic!r}, output_topic={self.output_topic!r}, "
            f"group_id={self.group_id!r}, consumer={_mask(self.consumer)!r}, "
            f"producer={_mask(self.producer)!r})"
        )


@dataclass(frozen=True, slots=True)
class BatchConfig:
    max_jobs: int = 512
    max_wait_ms: int = 20
    max_in_flight_jobs: int = 20_000  # outputs awaiting acks before the loop waits on the producer
    commit_interval_ms: int = 100  # at-least-once: finished offsets are committed this often


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_candidates: int = 5_000
    max_top_k: int = 1_000


@dataclass(frozen=True, slots=True)
class SchemaConfig:
    registry_url: str = ""  # empty: static mode with the bundled schemas
    job_schema_id: int = 1
    ranked_schema_id: int = 2


@dataclass(frozen=True, slots=True)
class ModelConfig:
    directory: str = "models"
    default_model: str = ""  # used for jobs naming a model that is not served; empty: reject
    reload_interval_s: int = 5  # how often the model directory is checked; 0: never reload
    shadow: Mapping[str, str] = field(default_factory=dict)  # served model -> shadow model


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    source: str = "files"  # "files" (embedded store) or "http" (Feast online feature server)
    users_file: str = ""
    items_file: str = ""
    url: str = ""  # feature server base URL, e.g. http://127.0.0.1:6566
    user_features: str = ""  # comma-separated "view:feature" references for users
    item_features: str = ""  # comma-separated "view:feature" references for items
    user_entity: str = "user_id"
    item_entity: str = "item_id"
    token: str = ""  # bearer token (masked in repr); prefer token_file
    token_file: str = ""  # re-read when it changes and after a 401
    ca_file: str = ""  # custom CA bundle for TLS
    client_cert: str = ""  # client certificate for mTLS
    client_key: str = ""
    timeout_ms: int = 250  # per micro-batch feature deadline
    max_rows_per_request: int = 500
    max_concurrency: int = 4
    retries: int = 2
    item_cache_ttl_s: int = 300
    item_cache_size: int = 1_000_000
    user_cache_ttl_s: int = 0  # 0: never cache user features
    unavailable_policy: str = "defaults"  # "defaults" (degraded lists) or "pause"
    breaker_failures: int = 5  # consecutive failed batches that open the circuit breaker
    breaker_reset_s: int = 10  # open -> half-open after this long
    snapshot_format: str = "auto"  # files: "auto" (by suffix: .parquet/.pq), "csv" or "parquet"
    snapshot_reload_interval_s: int = 5  # files: how often changed snapshots are reloaded; 0: never

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "token"}
        return f"FeatureConfig(token={'***' if self.token else ''!r}, {shown!r})"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    mode: str = "at_least_once"  # or "exactly_once" (transactions)
    transactional_id: str = ""  # exactly_once: stable per worker; default derived from group
    dead_letter_topic: str = ""  # empty: poison records are counted, logged and skipped
    deadline_ms: int = 0  # SLA on job age when scored; 0: none
    deadline_policy: str = "score"  # past the deadline: "score", "defaults" or "dead_letter"
    shutdown_timeout_s: int = 20  # SIGTERM to exit bound
    transaction_stall_s: int = 60  # exactly_once: a transaction stuck this long exits the worker


@dataclass(frozen=True, slots=True)
class ApiConfig:
    enabled: bool = False  # the synchronous ranking API beside the Kafka loop
    host: str = "127.0.0.1"
    port: int = 9500
    max_wait_ms: int = 2  # requests coalesce into one micro-batch for at most this long
    max_batch_jobs: int = 64


@dataclass(frozen=True, slots=True)
class ServerConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9400  # 0: pick a free port


@dataclass(frozen=True, slots=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    schemas: SchemaConfig = field(default_factory=SchemaConfig)
    models: ModelConfig = field(default_factory=ModelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    base_dir: str = "."  # relative paths in the config resolve against this

    def path(self, value: str) -> Path:
        """Resolve a configured path against the config file's directory."""
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p


_SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaConfig,
    "batch": BatchConfig,
    "limits": LimitsConfig,
    "schemas": SchemaConfig,
    "models": ModelConfig,
    "features": FeatureConfig,
    "delivery": DeliveryConfig,
    "server": ServerConfig,
    "api": ApiConfig,
}
_PASSTHROUGH = ("consumer", "producer")


def read_config_file(path: Path | None) -> tuple[str, str]:
    """The entry point's one file read: (toml text, base dir)."""
    if path is None:
        return "", "."
    try:
        return path.read_text(encoding="utf-8"), str(path.resolve().parent)
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc}", key=str(path)) from exc


def load_config(environ: Mapping[str, str], text: str = "", base_dir: str = ".") -> Config:
    """Build the configuration from TOML text and environment overrides; validate it."""
    try:
        raw: dict[str, Any] = tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from exc
    _apply_env(raw, environ)
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section(s): {sorted(unknown)}")
    sections = {name: _build(name, cls, raw.get(name, {})) for name, cls in _SECTIONS.items()}
    config = Config(**sections, base_dir=base_dir)
    _validate(config)
    return config


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2:
            raise ConfigError("expected STREAM_SCORER__<SECTION>__<KEY>", key=name)
        section, key = parts
        if section.startswith("kafka_") and section[6:] in _PASSTHROUGH:
            raw.setdefault("kafka", {}).setdefault(section[6:], {})[key.replace("_", ".")] = value
        else:
            raw.setdefault(section, {})[key] = value


def _build(name: str, cls: type[Any], values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError("must be a table", key=name)
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s): {sorted(unknown)}", key=name)
    kwargs: dict[str, Any] = {}
    default = cls()
    for key, value in values.items():
        kwargs[key] = _coerce(f"{name}.{key}", getattr(default, key), value)
    return replace(default, **kwargs)


def _coerce(key: str, default: Any, value: Any) -> Any:
    if isinstance(default, Mapping):
        if not isinstance(value, dict):
            raise ConfigError("must be a table of librdkafka properties", key=key)
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected a boolean, got {value!r}", key=key)
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"expected an integer, got {value!r}", key=key) from exc
    return str(value)


_AT_LEAST: dict[str, int] = {
    "batch.max_jobs": 1,
    "batch.max_wait_ms": 0,
    "limits.max_candidates": 1,
    "limits.max_top_k": 1,
    "features.timeout_ms": 1,
    "features.max_rows_per_request": 1,
    "features.max_concurrency": 1,
    "delivery.shutdown_timeout_s": 1,
    "models.reload_interval_s": 0,
    "api.max_batch_jobs": 1,
    "features.snapshot_reload_interval_s": 0,
}
_ONE_OF: dict[str, tuple[str, ...]] = {
    "features.source": ("files", "http"),
    "features.unavailable_policy": ("defaults", "pause"),
    "delivery.mode": ("at_least_once", "exactly_once"),
    "delivery.deadline_policy": ("score", "defaults", "dead_letter"),
    "features.snapshot_format": ("auto", "csv", "parquet"),
}
_NOT_EMPTY = ("kafka.input_topic", "kafka.output_topic", "kafka.group_id")
_PORTS = ("server.port", "api.port")


def _value(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _choices(options: tuple[str, ...]) -> str:
    quoted = [f"'{o}'" for o in options]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _validate(config: Config) -> None:
    checks = [
        *((_value(config, k) >= low, k, f"must be >= {low}") for k, low in _AT_LEAST.items()),
        *((_value(config, k) in o, k, f"must be {_choices(o)}") for k, o in _ONE_OF.items()),
        *((bool(_value(config, k)), k, "must not be empty") for k in _NOT_EMPTY),
        *((0 <= _value(config, k) < 65536, k, "must be a TCP port") for k in _PORTS),
        (config.batch.max_in_flight_jobs >= config.batch.max_jobs, "batch.max_in_flight_jobs",
         "must be >= batch.max_jobs"),
        (config.features.source != "http" or bool(config.features.url), "features.url",
         "required when features.source = 'http'"),
        (config.delivery.deadline_policy != "dead_letter"
         or bool(config.delivery.dead_letter_topic), "delivery.dead_letter_topic",
         "required when delivery.deadline_policy = 'dead_letter'"),
    ]  # fmt: skip
    for ok, key, reason in checks:
        if not ok:
            raise ConfigError(reason, key=key)
