"""Processes of the end-to-end benchmark: the scorer and baseline subprocesses and their CPU time.

Every subprocess is started behind ``setpriv --pdeathsig KILL`` (when available) so none outlives
the benchmark, and stopped by its own pid: SIGTERM, then SIGKILL past a bound.

CPU time is ``utime + stime`` of ``/proc/<pid>/stat`` summed over the process and its live
descendants (``--workers N`` forks its scorers), read while they run: the broker, the load
generator and the benchmark itself share the machine, so only the measured processes count.
Memory is ``/proc/<pid>/smaps_rollup``: RSS, PSS and USS (private clean + private dirty pages:
what the process would give back if it exited). A scorer started with a metrics port is scraped
over ``/metrics`` (``scrape``) for the kernel's own CPU counter.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

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


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of ``pid`` in MiB (empty when it exited)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    kb: dict[str, int] = {}
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            kb[name] = int(rest.split()[0])
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return {"rss_mb": kb.get("Rss", 0) / 1024, "pss_mb": kb.get("Pss", 0) / 1024,
            "uss_mb": uss / 1024}  # fmt: skip


def children_of(pid: int) -> list[int]:
    """Live direct children of ``pid``, oldest first (a ``--workers N`` scorer's workers)."""
    return sorted(_children(pid))


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive TCP ports free on 127.0.0.1 (a scorer with
    ``--workers N`` serves metrics on ``port + index``)."""
    for _ in range(100):
        first = random.randint(20_000, 60_000)
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no free TCP ports")


def scrape(port: int, name: str) -> float | None:
    """The sum of every sample of metric ``name`` served on 127.0.0.1:``port`` (None when the
    scorer does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


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
    users_file: Path | None = None  # default: the standard workload's CSV files
    items_file: Path | None = None
    metrics_port: int = 0  # > 0: serve /metrics on 127.0.0.1 from this port on

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
            "FEATURES__USERS_FILE": str(self.users_file or self.data_root / "features/users.csv"),
            "FEATURES__ITEMS_FILE": str(self.items_file or self.data_root / "features/items.csv"),
            "SERVER__ENABLED": "true" if self.metrics_port else "false",
            "SERVER__HOST": "127.0.0.1",
            "SERVER__PORT": str(self.metrics_port),
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
