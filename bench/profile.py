"""A flame graph of the scorer under load, in one command (``make profile``).

    python -m bench.profile [--workload standard|heavy] [--jobs N] [--seconds S] [--rate HZ]
                            [--workers N] [--native] [--format flamegraph|raw|speedscope]
                            [--out FILE]

Starts a local Apache Kafka broker (or uses KAFKA_BOOTSTRAP), writes the workload
(bench/workloads.py), pre-fills a 4-partition topic with a backlog, starts ``stream-scorer run``
on it and, once the scorer holds its partitions, samples it with py-spy for ``--seconds`` while
it drains the backlog at full speed: every sample is the scorer at work, none is start-up or
waiting. Writes an SVG flame graph (default: ``.cache/profiles/scorer-<workload>-<time>.svg``)
and prints its path. ``--native`` adds C frames (numpy, librdkafka) at some cost in sampling;
``--workers N`` samples every worker (py-spy ``--subprocesses``).

It also prints the CPU of each of the scorer's threads while sampled (the main thread runs the
loop; librdkafka's threads fetch, decompress, compress and send). Read the graph by width: the
share of the samples under a frame is the share of the main thread's CPU it took. The kernel is
under ``Scorer.rank``; decode, features, encode and the Kafka loop are its siblings under
``ScoringLoop.step``. ``--format raw`` writes collapsed stacks for scripts instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench.e2e_kafka import GroupWatch, prefill
from bench.e2e_procs import CLK_TCK, REPO, ScorerEnv, start_scorer
from bench.workloads import write_workload
from consumer.devtools.local_kafka import create_topics, default_cache_dir, kafka_cluster

PARTITIONS = 4
DEFAULT_JOBS = {"standard": 80_000, "heavy": 20_000}  # outlast the sampling at full speed


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def py_spy() -> str:
    """The py-spy executable (the dev extra installs it beside this interpreter)."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy not found: pip install -e '.[dev]'")
    return found


def record(pid: int, out: Path, args: argparse.Namespace) -> None:
    """Sample ``pid`` (and its workers) for ``args.seconds`` into the SVG ``out``."""
    command = [
        py_spy(), "record", "--pid", str(pid), "--duration", str(args.seconds),
        "--rate", str(args.rate), "--format", args.format, "--output", str(out),
    ]  # fmt: skip
    if args.workers > 1:
        command.append("--subprocesses")
    # --native needs the target paused for each sample; without it py-spy reads the stacks of the
    # running scorer (--nonblocking), which disturbs it least
    command.append("--native" if args.native else "--nonblocking")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` by thread name (librdkafka's threads are invisible
    to a Python-only flame graph: this shows their share)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def _report_threads(before: dict[str, float], after: dict[str, float]) -> None:
    spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
    total = sum(spent.values()) or 1.0
    for name, cpu in sorted(spent.items(), key=lambda kv: -kv[1]):
        if cpu > 0:
            _say(f"  thread {name:<20} {cpu:6.2f} CPU-s  {cpu / total:6.1%}")


def profile(args: argparse.Namespace, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        _say(f"writing the {args.workload} workload")
        data = write_workload(args.workload, Path(tmp))
        ids = (np.asarray(data.user_ids), np.asarray(data.item_ids))
        cache = default_cache_dir(os.environ)
        with kafka_cluster(cache, os.environ.get("KAFKA_BOOTSTRAP")) as bootstrap:
            run = uuid.uuid4().hex[:8]
            topics = [f"profile-{run}-jobs", f"profile-{run}-ranked"]
            create_topics(bootstrap, topics, PARTITIONS)
            watch = GroupWatch(bootstrap)
            try:
                jobs = args.jobs or DEFAULT_JOBS[args.workload]
                _say(f"pre-filling {jobs:,} jobs")
                prefill(bootstrap, topics[0], ids, jobs, shape=data.shape)
                group = f"profile-{run}"
                env = ScorerEnv(bootstrap, topics[0], topics[1], group, data.root, {},
                                data.users_file, data.items_file)  # fmt: skip
                log = REPO / "bench" / "out" / "profile-scorer.log"
                scorer = start_scorer(env, args.workers, log)
                try:
                    watch.wait_assigned(group, scorer, 300)
                    _say(f"sampling the scorer for {args.seconds} s")
                    started, threads = time.monotonic(), thread_cpu_s(scorer.pid)
                    record(scorer.pid, out, args)
                    _say(f"sampled {time.monotonic() - started:.1f} s; CPU by thread:")
                    _report_threads(threads, thread_cpu_s(scorer.pid))
                finally:
                    scorer.stop()
            finally:
                watch.delete_topics(topics)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workload", default="standard", choices=("standard", "heavy"))
    parser.add_argument("--jobs", type=int, default=0, help="backlog (default by workload)")
    parser.add_argument("--seconds", type=int, default=8, help="sampling time (whole seconds)")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--native", action="store_true", help="include C frames")
    parser.add_argument(
        "--format", default="flamegraph", choices=("flamegraph", "raw", "speedscope"),
        help="flamegraph (SVG), raw (collapsed stacks, for scripts) or speedscope (JSON)",
    )  # fmt: skip
    parser.add_argument("--out", default="", help="output path")
    args = parser.parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[args.format]
    default = REPO / ".cache" / "profiles" / f"scorer-{args.workload}-{stamp}.{suffix}"
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    profile(args, out)
    print(out)


if __name__ == "__main__":
    main()
