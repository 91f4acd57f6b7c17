"""The least-privilege ACLs derived from the configuration (the secured-broker tests grant
exactly these and prove they suffice)."""

from __future__ import annotations

import json

import pytest

from consumer.config import load_config
from consumer.security.acls import (
    AclRule,
    acls_for,
    kafka_acls_commands,
    main,
    scorer_acls,
    strimzi_acls,
)


def triples(rules: list[AclRule]) -> set[tuple[str, str, str, str]]:
    return {(r.resource, r.name, r.operation, r.pattern) for r in rules}


def test_at_least_once_reads_the_input_and_group_and_writes_the_output_only() -> None:
    config = load_config({})
    assert triples(scorer_acls(config)) == {
        ("topic", "scoring-jobs", "READ", "LITERAL"),
        ("group", "stream-scorer", "READ", "LITERAL"),
        ("topic", "ranked-lists", "WRITE", "LITERAL"),
    }


def test_dead_letter_topic_and_exactly_once_add_their_own_grants() -> None:
    env = {
        "STREAM_SCORER__DELIVERY__MODE": "exactly_once",
        "STREAM_SCORER__DELIVERY__DEAD_LETTER_TOPIC": "jobs-dlq",
    }
    rules = triples(scorer_acls(load_config(env)))
    assert ("topic", "jobs-dlq", "WRITE", "LITERAL") in rules
    # the scorer's default transactional id is "<group>-<host>-<worker>": a prefix grant
    assert ("transactional_id", "stream-scorer-", "WRITE", "PREFIXED") in rules
    assert len(rules) == 5


def test_a_configured_transactional_id_is_granted_literally() -> None:
    env = {
        "STREAM_SCORER__DELIVERY__MODE": "exactly_once",
        "STREAM_SCORER__DELIVERY__TRANSACTIONAL_ID": "scorer-eu-1",
    }
    rules = triples(scorer_acls(load_config(env)))
    assert ("transactional_id", "scorer-eu-1", "WRITE", "LITERAL") in rules


def test_producer_and_autoscaler_roles() -> None:
    config = load_config({})
    assert triples(acls_for(config, "producer")) == {("topic", "scoring-jobs", "WRITE", "LITERAL")}
    assert triples(acls_for(config, "autoscaler")) == {
        ("topic", "scoring-jobs", "DESCRIBE", "LITERAL"),
        ("group", "stream-scorer", "DESCRIBE", "LITERAL"),
    }
    with pytest.raises(ValueError, match="unknown role"):
        acls_for(config, "root")


def test_kafka_acls_commands() -> None:
    rules = [
        AclRule("topic", "jobs", "READ"),
        AclRule("transactional_id", "stream-scorer-", "WRITE", "PREFIXED"),
    ]
    assert kafka_acls_commands(rules, "User:scorer") == [
        'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config admin.properties --add '
        "--allow-principal 'User:scorer' --operation Read --topic 'jobs'",
        'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config admin.properties --add '
        "--allow-principal 'User:scorer' --operation Write --transactional-id 'stream-scorer-' "
        "--resource-pattern-type prefixed",
    ]


def test_strimzi_acls() -> None:
    rules = [AclRule("transactional_id", "stream-scorer-", "WRITE", "PREFIXED")]
    assert strimzi_acls(rules) == [
        {
            "resource": {
                "type": "transactionalId",
                "name": "stream-scorer-",
                "patternType": "prefixed",
            },
            "operations": ["Write"],
            "host": "*",
        }
    ]


def test_the_command_prints_both_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--principal", "User:scorer"]) == 0
    assert capsys.readouterr().out.count("kafka-acls.sh") == 3
    assert main(["--principal", "User:keda", "--role", "autoscaler", "--format", "strimzi"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["type"] == "simple"
    assert {a["operations"][0] for a in printed["acls"]} == {"Describe"}
