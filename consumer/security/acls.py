"""The least-privilege Kafka ACLs of a scorer deployment, derived from its configuration.

Three principals, each with only what its client calls need (Kafka's authorizer: READ, WRITE
and the other operations imply DESCRIBE; WRITE on any topic implies IDEMPOTENT_WRITE on the
cluster since Kafka 3.0, KIP-679, so the idempotent producer needs no cluster ACL):

==========  =====================================  =========  ==================================
role        resource                               operation  needed for
==========  =====================================  =========  ==================================
scorer      topic ``kafka.input_topic``            READ       Fetch, OffsetCommit, TxnOffsetCommit
scorer      group ``kafka.group_id``               READ       Join/Sync/Heartbeat/Leave, offsets
scorer      topic ``kafka.output_topic``           WRITE      Produce the ranked lists
scorer      topic ``delivery.dead_letter_topic``   WRITE      Produce dead letters (if set)
scorer      transactional id (exactly_once only)   WRITE      InitProducerId, AddPartitions/
                                                              OffsetsToTxn, EndTxn
producer    topic ``kafka.input_topic``            WRITE      ``stream-scorer produce``, your app
autoscaler  topic ``kafka.input_topic``            DESCRIBE   KEDA: ListOffsets, Metadata
autoscaler  group ``kafka.group_id``               DESCRIBE   KEDA: OffsetFetch
==========  =====================================  =========  ==================================

The transactional id is ``delivery.transactional_id`` when set (LITERAL), else the scorer's
default ``<group_id>-<host>-<worker>``, granted as the PREFIXED pattern ``<group_id>-``.

``python -m consumer.security.acls --config scorer.toml --principal User:stream-scorer`` prints the
``kafka-acls.sh`` commands; ``--format strimzi`` the ``acls`` of a Strimzi ``KafkaUser``;
``--apply`` creates them through the admin API, connecting with the configuration's
``[kafka.common]`` properties and secret files (an admin principal's, allowed to ALTER the
cluster's ACLs). The tests on the secured broker grant exactly `scorer_acls` and nothing more.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from consumer.config import Config, load_config, read_config_file
from consumer.errors import ConfigError, StreamScorerError

ROLES = ("scorer", "producer", "autoscaler")


@dataclass(frozen=True, slots=True)
class AclRule:
    """One ALLOW rule for a principal: ``operation`` on a resource matched by ``pattern``."""

    resource: str  # "topic", "group" or "transactional_id"
    name: str
    operation: str  # "READ", "WRITE" or "DESCRIBE"
    pattern: str = "LITERAL"  # or "PREFIXED"
    why: str = ""


def transactional_id_rule(config: Config) -> AclRule:
    why = "exactly-once transactions"
    if config.delivery.transactional_id:
        return AclRule("transactional_id", config.delivery.transactional_id, "WRITE", why=why)
    prefix = f"{config.kafka.group_id}-"
    return AclRule("transactional_id", prefix, "WRITE", "PREFIXED", why)


def scorer_acls(config: Config) -> list[AclRule]:
    """What the scorer's own principal needs in the configured delivery mode, and no more."""
    k = config.kafka
    rules = [
        AclRule("topic", k.input_topic, "READ", why="consume jobs, commit their offsets"),
        AclRule("group", k.group_id, "READ", why="consumer group membership and offsets"),
        AclRule("topic", k.output_topic, "WRITE", why="produce ranked lists"),
    ]
    if config.delivery.dead_letter_topic:
        dlq = config.delivery.dead_letter_topic
        rules.append(AclRule("topic", dlq, "WRITE", why="produce dead letters"))
    if config.delivery.mode == "exactly_once":
        rules.append(transactional_id_rule(config))
    return rules


def producer_acls(config: Config) -> list[AclRule]:
    """Whoever writes the scoring jobs (``stream-scorer produce`` or your application)."""
    return [AclRule("topic", config.kafka.input_topic, "WRITE", why="produce scoring jobs")]


def autoscaler_acls(config: Config) -> list[AclRule]:
    """KEDA's Kafka scaler: reads the group's committed offsets and the topic's end offsets."""
    k = config.kafka
    return [
        AclRule("topic", k.input_topic, "DESCRIBE", why="end offsets (lag)"),
        AclRule("group", k.group_id, "DESCRIBE", why="committed offsets (lag)"),
    ]


def acls_for(config: Config, role: str) -> list[AclRule]:
    builders = {"scorer": scorer_acls, "producer": producer_acls, "autoscaler": autoscaler_acls}
    if role not in builders:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    return builders[role](config)


_CLI_RESOURCE = {"topic": "--topic", "group": "--group", "transactional_id": "--transactional-id"}


def kafka_acls_commands(rules: Sequence[AclRule], principal: str) -> list[str]:
    """One ``kafka-acls.sh --add`` command per rule ($BOOTSTRAP and admin.properties are yours)."""
    commands = []
    for rule in rules:
        pattern = (
            f" --resource-pattern-type {rule.pattern.lower()}" if rule.pattern != "LITERAL" else ""
        )
        commands.append(
            'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config admin.properties '
            f"--add --allow-principal '{principal}' --operation {rule.operation.capitalize()} "
            f"{_CLI_RESOURCE[rule.resource]} '{rule.name}'{pattern}"
        )
    return commands


_STRIMZI_RESOURCE = {"topic": "topic", "group": "group", "transactional_id": "transactionalId"}


def strimzi_acls(rules: Sequence[AclRule]) -> list[dict[str, object]]:
    """The ``spec.authorization.acls`` entries of a Strimzi ``KafkaUser``."""
    return [
        {
            "resource": {
                "type": _STRIMZI_RESOURCE[rule.resource],
                "name": rule.name,
                "patternType": rule.pattern.lower(),
            },
            "operations": [rule.operation.capitalize()],
            "host": "*",
        }
        for rule in rules
    ]


def apply_acls(
    bootstrap: str, admin_properties: dict[str, str], principal: str,
    rules: Sequence[AclRule], timeout_s: float = 30.0,
) -> None:  # fmt: skip
    """Create the rules through the admin API (existing identical bindings are accepted)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
    from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

    types = {
        "topic": ResourceType.TOPIC,
        "group": ResourceType.GROUP,
        "transactional_id": ResourceType.TRANSACTIONAL_ID,
    }
    bindings = [
        AclBinding(
            types[r.resource],
            r.name,
            ResourcePatternType[r.pattern],
            principal,
            "*",
            AclOperation[r.operation],
            AclPermissionType.ALLOW,
        )
        for r in rules
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap, **admin_properties})
    for binding, future in admin.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            raise AclError(f"creating {binding} failed: {exc.args[0].str()}") from exc


class AclError(StreamScorerError):
    """The cluster refused to create an ACL."""


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.security.acls",
        description="Least-privilege Kafka ACLs of a stream-scorer deployment.",
    )
    parser.add_argument("--config", help="the scorer's TOML config (env STREAM_SCORER__* applies)")
    parser.add_argument("--principal", required=True, help="e.g. User:stream-scorer")
    parser.add_argument("--role", choices=ROLES, default="scorer")
    parser.add_argument("--format", choices=("kafka-acls", "strimzi"), default="kafka-acls")
    parser.add_argument(
        "--apply", action="store_true",
        help="create them through the admin API using the config's [kafka.common] properties",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        text, base = read_config_file(Path(args.config) if args.config else None)
        config = load_config(os.environ, text, base)
        rules = acls_for(config, args.role)
        if args.apply:
            from consumer.wiring import kafka_properties

            props = kafka_properties(config)
            apply_acls(config.kafka.bootstrap_servers, props, args.principal, rules)
            print(f"created {len(rules)} ACLs for {args.principal}")
            return 0
    except ConfigError as exc:
        print(f"consumer.security.acls: configuration error: {exc}", file=sys.stderr)
        return 2
    except StreamScorerError as exc:
        print(f"consumer.security.acls: {exc}", file=sys.stderr)
        return 1
    if args.format == "strimzi":  # JSON is YAML: paste it under the KafkaUser's authorization
        print(json.dumps({"type": "simple", "acls": strimzi_acls(rules)}, indent=2))
    else:
        print("\n".join(kafka_acls_commands(rules, args.principal)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
