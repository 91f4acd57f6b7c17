"""The command line: exit codes and messages for configuration errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from consumer.cli import build_parser, main


def test_invalid_config_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text("[batch]\nmax_jobs = 0\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "configuration error: batch.max_jobs: must be >= 1" in capsys.readouterr().err


def test_missing_model_directory_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text('[models]\ndirectory = "nowhere"\n[server]\nenabled = false\n')
    assert main(["run", "--config", str(config)]) == 1
    assert "ModelError" in capsys.readouterr().err


def test_subcommands_exist() -> None:
    parser = build_parser()
    for command in ("run", "serve", "produce", "demo"):
        assert parser.parse_args([command]).command == command


class RecordingProducer:
    """Stands in for confluent_kafka.Producer: keeps its configuration, acks every record."""

    configs: ClassVar[list[dict[str, object]]] = []

    def __init__(self, config: dict[str, object]) -> None:
        RecordingProducer.configs.append(config)
        self._pending: list[Callable[[object, object], None]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self._pending.append(kwargs["on_delivery"])

    def poll(self, timeout: float = 0.0) -> int:
        pending, self._pending = self._pending, []
        for report in pending:
            report(None, None)
        return len(pending)

    def flush(self, timeout: float = 0.0) -> int:
        self.poll()
        return 0


def test_produce_uses_the_common_kafka_properties_and_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "password").write_text("pw-from-file\n")
    config = tmp_path / "scorer.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "broker:9093"\n'
        '[kafka.common]\n"security.protocol" = "SASL_SSL"\n"sasl.username" = "loader"\n'
        '[kafka.secret_files]\n"sasl.password" = "password"\n'
    )
    monkeypatch.setattr("consumer.cli.Producer", RecordingProducer)
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    RecordingProducer.configs.clear()
    assert main(["produce", "--config", str(config), "--jobs", "3", "--candidates", "5"]) == 0
    (used,) = RecordingProducer.configs
    assert used["bootstrap.servers"] == "broker:9093"
    assert used["security.protocol"] == "SASL_SSL"
    assert used["sasl.password"] == "pw-from-file"
    assert "produced 3 jobs" in capsys.readouterr().out
