"""promtool: rule files and the compose scrape config are valid; the rule unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.deploy.contract import DEPLOY, RULE_TESTS_DIR, RULES_DIR


def _promtool(promtool: str, *args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_rule_files_check(promtool: str) -> None:
    files = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    assert len(files) == 3
    done = _promtool(promtool, "check", "rules", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files)


def test_rule_unit_tests_pass(promtool: str) -> None:
    tests = sorted(str(p.name) for p in RULE_TESTS_DIR.glob("*_test.yml"))
    assert tests == ["alerts_test.yml", "dependencies_test.yml", "recording_test.yml"]
    done = _promtool(promtool, "test", "rules", *tests, cwd=RULE_TESTS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout


def test_rule_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    # The same unit tests against an alert threshold moved from 1% to 3% of dead letters.
    rules = tmp_path / "rules"
    tests = tmp_path / "tests"
    rules.mkdir()
    tests.mkdir()
    for path in RULES_DIR.glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        (rules / path.name).write_text(text.replace("ratio_rate5m > 0.01", "ratio_rate5m > 0.03"))
    alerts = (RULE_TESTS_DIR / "alerts_test.yml").read_text(encoding="utf-8")
    (tests / "alerts_test.yml").write_text(alerts)
    done = _promtool(promtool, "test", "rules", "alerts_test.yml", cwd=tests)
    assert done.returncode != 0
    assert "StreamScorerDeadLetterRate" in done.stdout + done.stderr


def test_dependency_alert_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    # The Kafka alert made to wait 5 minutes instead of 1: its unit test must notice.
    rules = tmp_path / "rules"
    tests = tmp_path / "tests"
    rules.mkdir()
    tests.mkdir()
    for path in RULES_DIR.glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        if path.name == "stream-scorer-dependencies.yml":
            marker = 'dependency="kafka"}) == 0\n        for: 1m'
            assert marker in text
            text = text.replace(marker, marker.replace("1m", "5m"))
        (rules / path.name).write_text(text)
    tested = (RULE_TESTS_DIR / "dependencies_test.yml").read_text(encoding="utf-8")
    (tests / "dependencies_test.yml").write_text(tested)
    done = _promtool(promtool, "test", "rules", "dependencies_test.yml", cwd=tests)
    assert done.returncode != 0
    assert "StreamScorerKafkaUnreachable" in done.stdout + done.stderr


def test_compose_prometheus_config_check(promtool: str) -> None:
    done = _promtool(promtool, "check", "config", "--syntax-only", "prometheus/prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
