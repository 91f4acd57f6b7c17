"""One frozen configuration object, built once by the pure `load_config(environ, text)`.

Sources, later wins: built-in defaults, the TOML file, environment variables named
``STREAM_SCORER__<SECTION>__<KEY>`` (e.g. ``STREAM_SCORER__KAFKA__BOOTSTRAP_SERVERS``).
Raw librdkafka properties live in ``[kafka.common]`` (every client: consumer, producer, admin
clients, the ``produce`` command), ``[kafka.consumer]`` / ``[kafka.producer]`` (one client each;
they override ``common``) and ``[kafka.secret_files]`` (property -> file holding its value, e.g. a
mounted Kubernetes Secret); env: ``STREAM_SCORER__KAFKA_COMMON__SASL_MECHANISM`` ->
``sasl.mechanism``. `client_properties` merges them. They pass straight through, except the ones
correctness depends on (`consumer.stream.kafka_rules`). Values that look like secrets, and the
credentials in URLs, are masked in ``repr``. Nothing here reads the process environment or the
file system except `read_config_file` and `read_secret_file`, called by the entry points.

Types are strict (`consumer.config_values`): a TOML value must have its key's type, environment
text is parsed by the key's type, and a wrong one is a `ConfigError` naming the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from consumer.config_values import coerce, parse_env_value, shown
from consumer.errors import ConfigError
from consumer.security.redact import mask_properties as _mask
from consumer.security.redact import mask_url
from consumer.stream.kafka_rules import CONSUMER_RULES, PRODUCER_RULES, check_properties

ENV_PREFIX = "STREAM_SCORER__"


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "scoring-jobs"
    output_topic: str = "ranked-lists"
    group_id: str = "stream-scorer"
    unreachable_exit_s: int = 300  # cluster unreachable this long: exit non-zero; 0: never
    consumer: Mapping[str, str] = field(default_factory=dict)
    producer: Mapping[str, str] = field(default_factory=dict)
    common: Mapping[str, str] = field(default_factory=dict)  # every client; per-client wins
    secret_files: Mapping[str, str] = field(default_factory=dict)  # property -> file with value
    # Authentication, TLS verification or authorization with the brokers failing this long
    # (nothing recovered meanwhile) exits the worker non-zero; 0: never.
    auth_failure_exit_s: int = 120

    def __repr__(self) -> str:
        return (
            f"KafkaConfig(bootstrap_servers={self.bootstrap_servers!r}, "
            f"input_topic={self.input_topic!r}, output_topic={self.output_topic!r}, "
            f"group_id={self.group_id!r}, common={_mask(self.common)!r}, "
            f"consumer={_mask(self.consumer)!r}, producer={_mask(self.producer)!r}, "
            f"secret_files={dict(self.secret_files)!r}, "
            f"auth_failure_exit_s={self.auth_failure_exit_s!r}, "
            f"unreachable_exit_s={self.unreachable_exit_s!r})"
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
    registry_url: str = ""  # empty: static mode with the bundled schemas; user info = basic auth
    job_schema_id: int = 1
    ranked_schema_id: int = 2
    basic_auth_user_info: str = ""  # "user:password" (masked in repr); prefer basic_auth_file
    basic_auth_file: str = ""  # file holding "user:password"; re-read when it changes
    token: str = ""  # bearer token (masked in repr); prefer token_file
    token_file: str = ""  # re-read when it changes and after a 401
    ca_file: str = ""  # custom CA bundle for TLS
    client_cert: str = ""  # client certificate for mTLS
    client_key: str = ""
    timeout_ms: int = 5_000  # per registry request

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["registry_url"] = mask_url(self.registry_url)
        for secret in ("basic_auth_user_info", "token"):
            shown[secret] = "***" if shown[secret] else ""
        return f"SchemaConfig({shown!r})"


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
        shown["url"] = mask_url(self.url)
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
    tokens_file: str = ""  # bearer tokens accepted on /v1/rank, one per line; re-read on change
    # Beyond loopback without tokens_file the API refuses to start unless this is true.
    allow_unauthenticated: bool = False
    max_connections: int = 1024  # more open connections are answered 503 and closed
    idle_timeout_s: int = 60  # a connection silent this long (from opening or an answer) closes
    header_timeout_s: int = 10  # a request head must be complete this long after its first byte


@dataclass(frozen=True, slots=True)
class ServerConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9400  # 0: pick a free port


@dataclass(frozen=True, slots=True)
class TracingConfig:
    propagate: bool = True  # continue W3C trace context: ranked lists, dead letters, API answers
    missing: str = "none"  # jobs/requests without one: "none" (no header) or "new_root"
    spans: bool = False  # OpenTelemetry spans (needs the `otel` extra)
    endpoint: str = ""  # OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces
    sample_ratio: float = 0.01  # batches and requests started here; incoming sampled contexts win
    service_name: str = "stream-scorer"
    export_timeout_ms: int = 10_000
    max_queue_spans: int = 8_192  # spans buffered for export; past it they are dropped
    link_unsampled: bool = False  # batch span links also unsampled jobs' contexts (~12 us a job)


@dataclass(frozen=True, slots=True)
class LogsConfig:
    format: str = "text"  # "text" or "json" (one object per line); --log-format overrides
    librdkafka_lines_per_s: float = 5.0  # librdkafka's own lines past this rate are suppressed
    librdkafka_burst: int = 50


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
    tracing: TracingConfig = field(default_factory=TracingConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)

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
    "tracing": TracingConfig,
    "logs": LogsConfig,
}
_PASSTHROUGH = ("consumer", "producer", "common", "secret_files")
_CLIENTS = ("", "consumer", "producer")


def client_properties(
    kafka: KafkaConfig, client: str = "", secrets: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The librdkafka properties of one client, later wins: ``[kafka.common]``, the values read
    from ``[kafka.secret_files]`` (``secrets``: property -> value), then the client's own section
    (``"consumer"`` or ``"producer"``; ``""`` for admin clients and tools)."""
    if client not in _CLIENTS:
        raise ValueError(f"unknown Kafka client kind {client!r}")
    own: Mapping[str, str] = getattr(kafka, client) if client else {}
    return {**kafka.common, **(secrets or {}), **own}


def read_secret_file(path: Path, key: str) -> str:
    """One secret from a file (e.g. a mounted Kubernetes Secret), without its final newline.

    Errors name the key and the file, never the content."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read secret file {path}: {reason}", key=key) from None


def config_keys() -> dict[str, Any]:
    """Every key the configuration reads, ``"section.key"``, with its built-in default."""
    return {
        f"{name}.{f.name}": getattr(cls(), f.name)
        for name, cls in _SECTIONS.items()
        for f in fields(cls)
    }


def read_config_file(path: Path | None) -> tuple[str, str]:
    """The entry point's one file read: (toml text, base dir)."""
    if path is None:
        return "", "."
    try:
        return path.read_text(encoding="utf-8"), str(path.resolve().parent)
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc}", key=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not UTF-8: {exc}", key=str(path)) from exc


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
            raw.setdefault(section, {})[key] = _from_env(name, section, key, value)


def _from_env(name: str, section: str, key: str, text: str) -> Any:
    """An environment value parsed by the type of the key it sets (unknown keys stay text)."""
    cls = _SECTIONS.get(section)
    if cls is None or key not in {f.name for f in fields(cls)}:
        return text
    return parse_env_value(name, getattr(cls(), key), text)


def _build(name: str, cls: type[Any], values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"must be a table, got {shown(values)}", key=name)
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s): {sorted(unknown)}", key=name)
    kwargs: dict[str, Any] = {}
    default = cls()
    for key, value in values.items():
        kwargs[key] = coerce(f"{name}.{key}", getattr(default, key), value)
    return replace(default, **kwargs)


#: The smallest accepted value of every integer key (a test keeps this list complete).
_AT_LEAST: dict[str, int] = {
    "kafka.unreachable_exit_s": 0,
    "batch.max_jobs": 1,
    "batch.max_wait_ms": 0,
    "batch.commit_interval_ms": 0,
    "limits.max_candidates": 1,
    "limits.max_top_k": 1,
    "schemas.job_schema_id": 0,
    "schemas.ranked_schema_id": 0,
    "models.reload_interval_s": 0,
    "features.timeout_ms": 1,
    "features.max_rows_per_request": 1,
    "features.max_concurrency": 1,
    "features.retries": 0,
    "features.item_cache_ttl_s": 0,
    "features.item_cache_size": 1,
    "features.user_cache_ttl_s": 0,
    "features.breaker_failures": 1,
    "features.breaker_reset_s": 0,
    "delivery.deadline_ms": 0,
    "delivery.shutdown_timeout_s": 1,
    "delivery.transaction_stall_s": 1,
    "api.max_wait_ms": 0,
    "api.max_batch_jobs": 1,
    "tracing.export_timeout_ms": 1,
    "tracing.max_queue_spans": 1,
    "logs.librdkafka_burst": 1,
    "kafka.auth_failure_exit_s": 0,
    "schemas.timeout_ms": 1,
    "api.max_connections": 1,
    "api.idle_timeout_s": 1,
    "api.header_timeout_s": 1,
    "features.snapshot_reload_interval_s": 0,
}
_AT_MOST: dict[str, int] = {
    "batch.max_jobs": 1_000_000,  # librdkafka's bound on one consume() call
    "limits.max_top_k": 2**31 - 1,  # top_k is an Avro int
    "schemas.job_schema_id": 2**31 - 1,  # schema ids are non-negative int32s on the wire
    "schemas.ranked_schema_id": 2**31 - 1,
}
_ONE_OF: dict[str, tuple[str, ...]] = {
    "features.source": ("files", "http"),
    "features.unavailable_policy": ("defaults", "pause"),
    "delivery.mode": ("at_least_once", "exactly_once"),
    "delivery.deadline_policy": ("score", "defaults", "dead_letter"),
    "tracing.missing": ("none", "new_root"),
    "logs.format": ("text", "json"),
    "features.snapshot_format": ("auto", "csv", "parquet"),
}
_NOT_EMPTY = (
    "kafka.bootstrap_servers",
    "kafka.input_topic",
    "kafka.output_topic",
    "kafka.group_id",
)
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
        *((_value(config, k) <= top, k, f"must be <= {top}") for k, top in _AT_MOST.items()),
        *((_value(config, k) in o, k, f"must be {_choices(o)}") for k, o in _ONE_OF.items()),
        *((bool(_value(config, k)), k, "must not be empty") for k in _NOT_EMPTY),
        *((0 <= _value(config, k) < 65536, k, "must be a TCP port") for k in _PORTS),
        (config.batch.max_in_flight_jobs >= config.batch.max_jobs, "batch.max_in_flight_jobs",
         "must be >= batch.max_jobs"),
        (config.schemas.job_schema_id != config.schemas.ranked_schema_id,
         "schemas.ranked_schema_id", "must differ from schemas.job_schema_id"),
        (config.features.source != "http" or bool(config.features.url), "features.url",
         "required when features.source = 'http'"),
        (config.delivery.deadline_policy != "dead_letter"
         or bool(config.delivery.dead_letter_topic), "delivery.dead_letter_topic",
         "required when delivery.deadline_policy = 'dead_letter'"),
        (0.0 <= config.tracing.sample_ratio <= 1.0, "tracing.sample_ratio",
         "must be between 0 and 1"),
        (not config.tracing.spans or bool(config.tracing.endpoint), "tracing.endpoint",
         "required when tracing.spans = true"),
        (config.logs.librdkafka_lines_per_s > 0, "logs.librdkafka_lines_per_s", "must be > 0"),
    ]  # fmt: skip
    for ok, key, reason in checks:
        if not ok:
            raise ConfigError(reason, key=key)
    mode = config.delivery.mode
    check_properties("kafka.consumer", config.kafka.consumer, CONSUMER_RULES, mode)
    check_properties("kafka.producer", config.kafka.producer, PRODUCER_RULES, mode)
    for rules in (CONSUMER_RULES, PRODUCER_RULES):  # common properties reach both clients
        check_properties("kafka.common", config.kafka.common, rules, mode)
