"""The librdkafka properties correctness depends on, and which user values of them are refused.

User properties (``[kafka.consumer]``, ``[kafka.producer]``, ``stream-scorer produce -X``) pass
straight through to librdkafka, except these: the scorer sets them itself, and a different value
would silently break a delivery guarantee. `check_properties` refuses such a value with the
reason, so a misconfigured scorer never starts; setting a property to the value the scorer needs
anyway is accepted.

Pure: no librdkafka here, so `consumer.config` validates without creating a client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from consumer.errors import ConfigError

FALSE = frozenset({"false", "0"})
TRUE = frozenset({"true", "1"})


@dataclass(frozen=True, slots=True)
class Rule:
    """One property the scorer owns: `accepts` its user value, or it may not be set at all."""

    name: str
    reason: str
    accepts: Callable[[str], bool] | None = None  # None: the property may not be set
    modes: tuple[str, ...] = ("at_least_once", "exactly_once")  # delivery modes it applies to


def _one_of(values: frozenset[str]) -> Callable[[str], bool]:
    return lambda value: value.strip().lower() in values


def _positive_int(value: str) -> bool:
    return value.strip().isdigit() and int(value) > 0


_COMMON = (Rule("bootstrap.servers", "set kafka.bootstrap_servers instead"),)

CONSUMER_RULES: tuple[Rule, ...] = (
    *_COMMON,
    Rule("group.id", "set kafka.group_id instead"),
    Rule(
        "enable.auto.commit",
        "must stay false: offsets are committed only after a job's outputs are acknowledged",
        _one_of(FALSE),
    ),
    Rule(
        "enable.auto.offset.store",
        "must stay false: the scorer commits explicit offsets of finished jobs only",
        _one_of(FALSE),
    ),
    Rule(
        "isolation.level",
        "must be read_committed under delivery.mode = 'exactly_once': an aborted upstream "
        "transaction must never be scored",
        _one_of(frozenset({"read_committed"})),
        modes=("exactly_once",),
    ),
    Rule(
        "statistics.interval.ms",
        "must be a positive number of milliseconds: the broker connection state is read from "
        "librdkafka's statistics",
        _positive_int,
    ),
)

PRODUCER_RULES: tuple[Rule, ...] = (
    *_COMMON,
    Rule(
        "enable.idempotence",
        "must stay true: a retried send must never duplicate or reorder ranked lists",
        _one_of(TRUE),
    ),
    Rule(
        "acks",
        "must stay all (-1): an output counts as delivered only once every in-sync replica has it",
        _one_of(frozenset({"all", "-1"})),
    ),
    Rule(
        "request.required.acks",
        "must stay all (-1): an output counts as delivered only once every in-sync replica has it",
        _one_of(frozenset({"all", "-1"})),
    ),
    Rule(
        "transactional.id",
        "set delivery.transactional_id instead (exactly_once derives one id per worker from it)",
    ),
)


def check_properties(
    table: str, props: Mapping[str, str], rules: tuple[Rule, ...], mode: str
) -> None:
    """Raise `ConfigError` naming ``table."name"`` for the first property a rule refuses."""
    for rule in rules:
        if rule.name not in props or mode not in rule.modes:
            continue
        value = props[rule.name]
        key = f'{table}."{rule.name}"'
        if rule.accepts is None:
            raise ConfigError(f"may not be set here: {rule.reason}", key=key)
        if not rule.accepts(value):
            raise ConfigError(f"{value!r} is refused: {rule.reason}", key=key)
