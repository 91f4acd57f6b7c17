"""`stream-scorer produce` on the real broker with the service's client settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.devtools.local_kafka import create_topics
from tests.consumer.kafka_support import read_all
from tests.deploy.contract import ROOT

pytestmark = pytest.mark.kafka


def test_produce_takes_the_scorers_config_and_x_properties(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique_name("jobs")
    create_topics(kafka_bootstrap, [topic], 1)
    config = tmp_path / "scorer.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = ["{kafka_bootstrap}"]\ninput_topic = "{topic}"\n'
        '[kafka.producer]\n"linger.ms" = 1\n"client.id" = "from-config"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "produce", "--config", str(config),
         "-X", "compression.type=zstd", "-X", "client.id=from-x", "--jobs", "25",
         "--candidates", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"produced 25 jobs to {topic}"  # topic from --config
    assert len(read_all(kafka_bootstrap, topic, committed_only=False, idle_s=6.0)) == 25
