"""Names are a contract: every metric the rules and the dashboard read is one the service exports.

The contract (tests/deploy/contract.py) is checked against `consumer.metrics.Metrics` itself, so a
renamed metric fails here before it silently empties a panel or disarms an alert.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumer.metrics import Metrics
from tests.deploy.contract import (
    CONTRACT,
    PROCESS_NAME,
    RAW_NAME,
    RECORDED_NAME,
    RULE_TESTS_DIR,
    SAMPLE_LABELS,
    dashboard_targets,
    dashboard_texts,
    exported_names,
    feed,
    load_dashboard,
    load_yaml,
    process_names,
    recorded_names,
    rule_texts,
    rules,
)


def _raw_names(texts: list[str]) -> set[str]:
    return {name for text in texts for name in RAW_NAME.findall(text)}


def test_existing_metrics_are_defined_by_the_service() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    defined = {family.name: family.type for family in registry.collect()}
    for name, spec in CONTRACT.items():
        if spec.existing:
            assert defined.get(name) == spec.kind, name
        elif name in defined:  # announced metric has landed: it must match the contract
            assert defined[name] == spec.kind, name
    unknown = {n for n in defined if n.startswith("stream_scorer_")} - set(CONTRACT)
    assert not unknown, f"metrics missing from the contract: {sorted(unknown)}"


def test_every_contract_metric_exports_its_labels() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    feed(registry)
    exposition = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    for name, spec in CONTRACT.items():
        samples = families[name].samples
        assert samples, name
        for label in spec.labels:
            assert any(s.labels.get(label) == SAMPLE_LABELS[label] for s in samples), (name, label)


def test_rules_use_only_contract_metrics() -> None:
    used = _raw_names(list(rule_texts()))
    assert len(used) >= 12
    assert used <= set(exported_names()), sorted(used - set(exported_names()))


def test_rules_cover_every_announced_metric_that_needs_an_alert() -> None:
    used = {exported_names()[n] for n in _raw_names(list(rule_texts()))}
    for name in (
        "stream_scorer_dead_letters",
        "stream_scorer_feature_errors",
        "stream_scorer_feature_breaker_open",
        "stream_scorer_model_reloads",
        "stream_scorer_e2e_latency_seconds",
        "stream_scorer_consumer_lag",
        "stream_scorer_dependency_up",
        "stream_scorer_assigned_partitions",
    ):
        assert name in used, name


def test_dashboard_uses_only_contract_metrics_and_defined_recordings() -> None:
    texts = list(dashboard_texts(load_dashboard()))
    used = _raw_names(texts)
    assert used <= set(exported_names()), sorted(used - set(exported_names()))
    recorded = {name for text in texts for name in RECORDED_NAME.findall(text)}
    assert recorded, "the dashboard should read the recording rules"
    assert recorded <= recorded_names(), sorted(recorded - recorded_names())


def test_dashboard_shows_every_metric_of_the_contract() -> None:
    texts = list(dashboard_texts(load_dashboard()))
    shown = {exported_names()[n] for n in _raw_names(texts)}
    recorded_from = {
        exported_names()[n]
        for rule in rules()
        if "record" in rule and rule["record"] in " ".join(texts)
        for n in RAW_NAME.findall(str(rule["expr"]))
    }
    assert set(CONTRACT) == shown | recorded_from, sorted(set(CONTRACT) - shown - recorded_from)


def test_dashboard_targets_have_unique_ref_ids_and_a_datasource() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "stream-scorer"
    for panel in dashboard["panels"]:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
    for target in dashboard_targets(dashboard):
        assert target["datasource"]["uid"] == "${datasource}"


def test_alerts_have_severity_and_summary() -> None:
    alerts = [rule for rule in rules() if "alert" in rule]
    assert len(alerts) >= 7
    for alert in alerts:
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]


def test_recording_rule_names_follow_level_metric_operations() -> None:
    for name in recorded_names():
        assert re.fullmatch(r"stream_scorer:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_rule_unit_tests_feed_only_contract_metrics() -> None:
    for path in RULE_TESTS_DIR.glob("*_test.yml"):
        for case in load_yaml(path)["tests"]:
            for series in case["input_series"]:
                name = str(series["series"]).split("{", 1)[0]
                known = name == "up" or name in exported_names() or name in process_names()
                assert known, (path.name, name)


def test_process_series_the_rules_and_dashboard_read_are_exported() -> None:
    texts = [*rule_texts(), *dashboard_texts(load_dashboard())]
    used = {name for text in texts for name in PROCESS_NAME.findall(text)}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= used
    assert used <= process_names(), sorted(used - process_names())


def test_rules_and_dashboard_cover_memory_gc_pauses_and_dropped_trace_context() -> None:
    alerts = {str(rule["alert"]): str(rule["expr"]) for rule in rules() if "alert" in rule}
    assert "process_resident_memory_bytes" in " ".join(r["expr"] for r in rules())
    for alert in ("StreamScorerMemoryGrowing", "StreamScorerGcPauses",
                  "StreamScorerTraceContextDropped"):  # fmt: skip
        assert alert in alerts, alert
