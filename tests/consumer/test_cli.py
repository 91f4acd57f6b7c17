"""The command line: exit codes and messages for configuration errors."""

from __future__ import annotations

from pathlib import Path

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
