"""Processes of the end-to-end benchmark: the scorer and baseline subprocesses and their CPU time.

Every subprocess is started behind ``setpriv --pdeathsig KILL`` (when available) so none outlives
the benchmark, and stopped by its own pid: SIGTERM, then SIGKILL past a bound.

CPU time is ``utime + stime`` of ``/proc/<pid>/stat`` summed over the process and its live
descendants (``--workers N`` forks its scorers), read while they run: the broker, the load
generator and the benchmark itself share the machine, so only the measured processes count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from consumer.devtools.local_kafka import die_with_parent_prefix

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[1]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # exited meanwhile
        return None
    return stat[stat.rindex(")") + 2 :].split()  # field 3 (state) onward


def _children(pid: int) -> list[int]:
    """Live direct children of ``pid`` (a scan of /proc: no CONFIG_PROC_CHILDREN needed)."""
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def tree_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and all its live descendants, every thread, in seconds."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        fields = _stat_fields(current)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
            pending.extend(_children(current))
    return total / CLK_TCK


def own_cpu_s() -> float:
    """CPU seconds of this process, its reaped children and its live descendants."""
    fields = _stat_fields(os.getpid()) or ["0"] * 15
    reaped = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    live = sum(tree_cpu_s(pid) for pid in _children(os.getpid()))
    return reaped / CLK_TCK + live


def machine_busy_s() -> float:
    """CPU seconds every CPU of the machine spent busy since boot (/proc/stat, idle excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK  # minus idle and iowait


def broker_cpu_s() -> float | None:
    """CPU seconds of the local broker (a ``java`` child of this process); None if external."""
    for pid in _children(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline:
            return tree_cpu_s(pid)
    return None


@dataclass(frozen=True, slots=True)
class ScorerEnv:
    """What a scorer subprocess needs: the ``STREAM_SCORER__*`` settings of one run."""

    bootstrap: str
    input_topic: str
    output_topic: str
    group: str
    data_root: Path
    extra: Mapping[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_SCORER__")}
        cfg = {
            "KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA__INPUT_TOPIC": self.input_topic,
            "KAFKA__OUTPUT_TOPIC": self.output_topic,
            "KAFKA__GROUP_ID": self.group,
            "KAFKA_CONSUMER__SESSION_TIMEOUT_MS": "6000",
            "KAFKA_CONSUMER__HEARTBEAT_INTERVAL_MS": "500",
            "MODELS__DIRECTORY": str(self.data_root / "models"),
            "MODELS__RELOAD_INTERVAL_S": "0",
            "FEATURES__USERS_FILE": str(self.data_root / "features" / "users.csv"),
            "FEATURES__ITEMS_FILE": str(self.data_root / "features" / "items.csv"),
            "SERVER__ENABLED": "false",
            "DELIVERY__SHUTDOWN_TIMEOUT_S": "20",
            **self.extra,
        }
        env.update({f"STREAM_SCORER__{k}": v for k, v in cfg.items()})
        return env


class Child:
    """One subprocess (its output in a log file) with its CPU time readable while it runs."""

    def __init__(
        self, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*die_with_parent_prefix(), sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=REPO,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float:
        return tree_cpu_s(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout_s: float) -> int:
        return self.proc.wait(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (the scorer finishes, commits and leaves its group), SIGKILL past the bound."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def start_scorer(env: ScorerEnv, workers: int, log_path: Path) -> Child:
    """``python -m consumer.cli run --workers N`` with the run's settings in its environment."""
    args = ["-m", "consumer.cli", "--log-level", "WARNING", "run", "--workers", str(workers)]
    return Child(args, log_path, env.environ())


def start_baseline(command: str, options: Mapping[str, str | int | float], log_path: Path) -> Child:
    """``python -m bench.e2e_baselines COMMAND --key value ...`` (passthrough, naive, generate)."""
    args = ["-m", "bench.e2e_baselines", command]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return Child(args, log_path)
