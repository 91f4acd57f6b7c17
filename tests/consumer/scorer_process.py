"""Run `stream-scorer run` as a real subprocess (for kill -9, SIGTERM and rebalance tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from consumer.devtools.demo_data import DemoData
from consumer.devtools.local_kafka import die_with_parent_prefix


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    bootstrap: str
    jobs_topic: str
    ranked_topic: str
    group: str
    data: DemoData
    mode: str = "at_least_once"
    dead_letter_topic: str = ""
    max_jobs: int = 128
    instance_id: str = ""  # static membership (group.instance.id)
    extra: dict[str, str] = field(default_factory=dict)

    def environ(self, worker_index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_SCORER__")}
        cfg = {
            "KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA__INPUT_TOPIC": self.jobs_topic,
            "KAFKA__OUTPUT_TOPIC": self.ranked_topic,
            "KAFKA__GROUP_ID": self.group,
            "KAFKA_CONSUMER__SESSION_TIMEOUT_MS": "6000",
            "KAFKA_CONSUMER__HEARTBEAT_INTERVAL_MS": "500",
            "BATCH__MAX_JOBS": str(self.max_jobs),
            "MODELS__DIRECTORY": str(self.data.models_dir),
            "MODELS__RELOAD_INTERVAL_S": "0",
            "FEATURES__USERS_FILE": str(self.data.users_file),
            "FEATURES__ITEMS_FILE": str(self.data.items_file),
            "SERVER__ENABLED": "false",
            "DELIVERY__MODE": self.mode,
            "DELIVERY__DEAD_LETTER_TOPIC": self.dead_letter_topic,
            "DELIVERY__SHUTDOWN_TIMEOUT_S": "20",
            "DELIVERY__TRANSACTION_STALL_S": "20",
            **self.extra,
        }
        if self.instance_id:
            cfg["KAFKA_CONSUMER__GROUP_INSTANCE_ID"] = f"{self.instance_id}-{worker_index}"
        env.update({f"STREAM_SCORER__{k}": v for k, v in cfg.items()})
        return env


class ScorerProcess:
    """One scorer subprocess; its output goes to a log file for post-mortems."""

    def __init__(
        self, spec: ScorerSpec, log_dir: Path, worker_index: int = 0, log_level: str = "INFO"
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"scorer-{worker_index}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*die_with_parent_prefix(), sys.executable, "-X", "faulthandler", "-m", "consumer.cli",
             "--log-level", log_level, "run",
             "--worker-index", str(worker_index)],
            env=spec.environ(worker_index), stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def terminate(self, timeout_s: float = 30.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took to exit)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self._log.close()
        return code, time.monotonic() - start

    def reap(self) -> int:
        """The exit code of a process that ended by itself; closes its log."""
        code = self.proc.wait(30)
        self._log.close()
        return code

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
