"""End-to-end benchmark: the scorer on a real broker against three baselines, then latency.

    python -m bench.e2e [--json] [--quick] [--max-wait-ms MS] [--linger-ms MS]
                        [--generator-linger-ms MS] [--workload standard|heavy]

Starts a local Apache Kafka broker (or uses KAFKA_BOOTSTRAP), writes the workload's model and
features (bench/workloads.py; ``standard``, the default: the demo model, 100k items, 50k users,
2**22 weights, CSV files; ``heavy``: 24 crosses, 1M items, 100k users, Parquet snapshots) and
pre-fills a 4-partition topic with realistic jobs (50,000; heavy 20,000; ~700 Zipf-popular
candidates, random users, top_k 50). Every consumer below reads that same
backlog in its own consumer group and writes to a sink topic; its jobs/s is wall time from the
group's first assignment (first consumption) until its committed offsets reach the target (every
consumer commits an offset only after the outputs before it are acknowledged), and its CPU time is
utime + stime of its process tree (/proc), so the broker and this process do not count.

- scorer: ``python -m consumer.cli run`` (1 worker, default batching), the whole backlog;
- passthrough: re-produces the bytes untouched, the ceiling that Kafka I/O alone allows;
- naive: fastavro per record, a Python loop per candidate (``scoring.reference``), a sample;
- unbatched: the scorer with ``batch.max_jobs = 1`` (one job per kernel call), a sample;
- 2 workers: ``run --workers 2`` on the same backlog (``two_worker_speedup``: the jobs/s ratio
  once each group is stable, after the start-up rebalance; 50,000 jobs keep most of the drain
  past it; ``two_worker_cpu_efficiency``: predictions per CPU-second, 2 workers / 1; the memory of
  each process at the end of the drain);
- per-job numpy (heavy workload): fastavro, numpy scoring and argpartition one job at a time, the
  way a Quix Streams or Bytewax app is written (bench/e2e_per_job.py), the whole backlog; and the
  same with item terms precomputed at start-up like the scorer's kernel (a sample);
- tracing: spans on vs off on a backlog of traced jobs (``tracing_overhead_share``, see
  bench/e2e_tracing.py);
- latency: a fresh scorer (``batch.max_wait_ms`` and producer ``linger.ms`` from the options)
  under open-loop load from a separate generator process (an upstream producer with its own
  ``linger.ms``, librdkafka's default 5 ms unless ``--generator-linger-ms`` says otherwise) at
  25/50/75% of the scorer's backlog rate (see bench/e2e_latency.py); the input topic uses
  LogAppendTime, so ``scorer_added_p99_ms_at_50pct`` is what the scorer adds after the broker.

Scorers serve /metrics on a local port: their kernel CPU counter gives
``pipeline_overhead_share``. Start-up CPU and whole-run figures: bench/e2e_figures.py.

Prints a table (or one JSON object with ``--json``) and writes bench/out/e2e.png.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.e2e_kafka import Backlog, GroupWatch, join_once, prefill
from bench.e2e_latency import LatencyPlan, run_levels
from bench.e2e_plot import plot
from bench.e2e_procs import (
    REPO,
    Child,
    ScorerEnv,
    broker_cpu_s,
    children_of,
    free_ports,
    machine_busy_s,
    memory_mb,
    own_cpu_s,
    scrape,
    start_baseline,
    start_scorer,
)
from bench.e2e_report import Drain, clean, report, steady_rate, summarize
from bench.e2e_tracing import report as tracing_report
from bench.e2e_tracing import tracing_phase
from bench.workloads import WorkloadData, write_workload
from consumer.devtools.local_kafka import create_topics, default_cache_dir, kafka_cluster

PARTITIONS = 4
KERNEL_CPU = "stream_scorer_kernel_cpu_seconds_total"
LOADS = (0.25, 0.5, 0.75)
TRACED_JOBS = 20_000  # the tracing phase's backlog (bench/e2e_tracing.py)
OUT = REPO / "bench" / "out"


@dataclass(frozen=True, slots=True)
class Options:
    backlog_jobs: int
    naive_jobs: int
    unbatched_jobs: int
    repeats: int
    latency_s: float
    warmup_s: float
    max_wait_ms: int
    linger_ms: int
    generator_linger_ms: int = 5
    timeout_s: float = 240.0
    workload: str = "standard"
    per_job_cached_jobs: int = 0  # heavy: the cached per-job baseline's sample


def options_for(
    quick: bool, max_wait_ms: int, linger_ms: int, generator_linger_ms: int,
    workload: str = "standard",
) -> Options:  # fmt: skip
    lat = (max_wait_ms, linger_ms, generator_linger_ms)
    if workload == "heavy":
        if quick:
            return Options(5_000, 20, 1_500, 1, 6.0, 1.0, *lat, 300.0, workload, 1_500)
        return Options(20_000, 40, 5_000, 2, 20.0, 2.0, *lat, 300.0, workload, 5_000)
    if quick:
        return Options(5_000, 40, 1_500, 1, 6.0, 1.0, *lat)
    return Options(50_000, 200, 5_000, 3, 20.0, 2.0, *lat)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Bench:
    """The broker, the backlog and the one admin client shared by every measurement."""

    def __init__(self, bootstrap: str, data: WorkloadData, options: Options) -> None:
        self.loadavg_start = os.getloadavg()[0]  # other work on the machine skews wall time
        self.cpu_start = (time.monotonic(), machine_busy_s(), own_cpu_s())
        self.bootstrap, self.data, self.options = bootstrap, data, options
        data_root = self.data_root = data.root
        run = uuid.uuid4().hex[:8]
        self.topics = {k: f"e2e-{run}-{k}" for k in ("jobs", "sink", "lat-jobs", "lat-ranked")}
        self.group_prefix = f"e2e-{run}"
        self.logs = OUT / "e2e-logs"
        create_topics(bootstrap, list(self.topics.values()), PARTITIONS)
        self.watch = GroupWatch(bootstrap)
        self.watch.log_append_time(self.topics["lat-jobs"])
        ids = (np.load(data_root / "user_ids.npy"), np.load(data_root / "item_ids.npy"))
        _say(f"pre-filling {options.backlog_jobs:,} jobs into {self.topics['jobs']}")
        self.backlog: Backlog = prefill(
            bootstrap, self.topics["jobs"], ids, options.backlog_jobs, shape=data.shape
        )
        join_once(bootstrap, self.topics["jobs"], f"{self.group_prefix}-warmup")

    def scorer_env(
        self, group: str, extra: Mapping[str, str], latency: bool = False, metrics_port: int = 0
    ) -> ScorerEnv:
        t = self.topics
        topics = (t["lat-jobs"], t["lat-ranked"]) if latency else (t["jobs"], t["sink"])
        d = self.data
        return ScorerEnv(self.bootstrap, *topics, group, d.root, extra, d.users_file,
                         d.items_file, metrics_port)  # fmt: skip

    def drain(
        self, name: str, start: Callable[[str], Child], target: int, members: int = 1,
        metrics_port: int = 0,
    ) -> Drain:  # fmt: skip
        group = f"{self.group_prefix}-{name}"
        child = start(group)
        timeout = self.options.timeout_s
        try:
            t0 = self.watch.wait_assigned(group, child, timeout)
            cpu0, broker0 = child.cpu_s(), broker_cpu_s()
            kernel0 = _kernel_cpu(metrics_port, members)
            stable, done = t0, 0
            if members > 1:  # the group's first member starts alone; then it rebalances
                stable = self.watch.wait_members(group, members, child, timeout)
                done = sum(self.watch.committed(group, self.backlog.topic).values())
            t1, committed, series = self.watch.wait_committed(
                group, self.backlog.topic, target, child, timeout
            )
            total, broker1 = child.cpu_s(), broker_cpu_s()
            kernel = _kernel_cpu(metrics_port, members) - kernel0
            memory = _memory(child.pid, members)
        finally:
            child.stop()
        jobs, cpu = sum(committed.values()), total - cpu0
        broker = None if broker0 is None or broker1 is None else broker1 - broker0
        drain = Drain(name, jobs, self.backlog.predictions_before(committed), t1 - t0, cpu,
                      steady_rate(series, target), broker,
                      (jobs - done) / (t1 - stable) if t1 > stable else float("nan"),
                      cpu0, total, kernel, memory)  # fmt: skip
        _say(f"  {name:<14} {drain.jobs:>6} jobs {drain.wall_s:6.2f} s wall {cpu:6.2f} s CPU"
             f" (broker {broker or 0:.2f} s)")  # fmt: skip
        return drain

    def scorer(self, name: str, workers: int, target: int, **extra: str) -> Drain:
        port = free_ports(workers)

        def start(group: str) -> Child:
            env = self.scorer_env(group, {k.upper(): v for k, v in extra.items()}, False, port)
            return start_scorer(env, workers, self.logs / f"{name}.log")

        return self.drain(name, start, target, workers, port)

    def baseline(self, name: str, command: str, target: int, **more: str) -> Drain:
        def start(group: str) -> Child:
            options: dict[str, str | int] = {
                "bootstrap": self.bootstrap, "topic": self.backlog.topic,
                "out": self.topics["sink"], "group": group, "data": str(self.data_root),
                "jobs": target, "workload": self.data.name, **more,
            }  # fmt: skip
            return start_baseline(command, options, self.logs / f"{name}.log")

        return self.drain(name, start, target)

    def latency(self, max_rate: float) -> list[dict[str, Any]]:
        o, group = self.options, f"{self.group_prefix}-latency"
        extra = {"BATCH__MAX_WAIT_MS": str(o.max_wait_ms),
                 "KAFKA_PRODUCER__LINGER_MS": str(o.linger_ms)}  # fmt: skip
        scorer = start_scorer(self.scorer_env(group, extra, True), 1, self.logs / "latency.log")
        plan = LatencyPlan(
            self.bootstrap, self.topics["lat-jobs"], self.topics["lat-ranked"], self.data_root,
            max_rate, LOADS, o.latency_s, o.warmup_s, o.generator_linger_ms, self.logs,
            self.data.name,
        )  # fmt: skip
        try:
            return run_levels(plan, scorer, group, self.watch)
        finally:
            scorer.stop()

    def close(self) -> None:
        self.watch.delete_topics(list(self.topics.values()))


def run_all(bench: Bench) -> dict[str, Any]:
    o, n = bench.options, bench.backlog.jobs
    heavy = o.workload == "heavy"
    one, two, passthrough, per_job = [], [], [], []
    for r in range(o.repeats):
        _say(f"backlog drains, round {r + 1}/{o.repeats}")
        one.append(bench.scorer(f"scorer-1w-{r}", 1, n))
        two.append(bench.scorer(f"scorer-2w-{r}", 2, n))
        passthrough.append(bench.baseline(f"passthrough-{r}", "passthrough", n))
        if heavy:
            per_job.append(bench.baseline(f"per-job-numpy-{r}", "per_job_numpy", n))
    cached = []
    if heavy and o.per_job_cached_jobs:
        target = min(o.per_job_cached_jobs, n)
        cached.append(bench.baseline("per-job-cached", "per_job_numpy", target, mode="cached"))
    unbatched = bench.scorer("unbatched", 1, min(o.unbatched_jobs, n), batch__max_jobs="1")
    naive = bench.baseline("naive", "naive", min(o.naive_jobs, n))
    max_rate = statistics.median(d.jobs_per_s for d in one)
    _say(f"latency at 25/50/75% of {max_rate:,.0f} jobs/s, {o.latency_s:.0f} s each")
    levels = bench.latency(max_rate)
    results = summarize(one, two, passthrough, unbatched, naive, levels, _config(bench), per_job,
                        cached)  # fmt: skip
    results.update(tracing_phase(bench, min(n, TRACED_JOBS), max(2, o.repeats)))
    return results


def _kernel_cpu(port: int, workers: int) -> float:
    """The scorer's kernel CPU counter summed over its workers (NaN without a metrics port)."""
    if not port:
        return float("nan")
    values = [scrape(port + i, KERNEL_CPU) for i in range(workers)]
    return float("nan") if any(v is None for v in values) else sum(v or 0.0 for v in values)


def _memory(pid: int, workers: int) -> dict[str, dict[str, float]]:
    """RSS/PSS/USS of a scorer (one worker) or of the parent and each worker (N workers)."""
    if workers <= 1:
        return {"scorer": memory_mb(pid)}
    out = {"parent": memory_mb(pid)}
    for i, child in enumerate(children_of(pid)):
        out[f"worker-{i}"] = memory_mb(child)
    return out


def _foreign_cores(bench: Bench) -> float:
    """Average CPUs busy with work other than this benchmark's processes (other users)."""
    wall0, busy0, own0 = bench.cpu_start
    busy, own = machine_busy_s() - busy0, own_cpu_s() - own0
    return max(0.0, busy - own) / (time.monotonic() - wall0)


def _config(bench: Bench) -> dict[str, Any]:
    b, o = bench.backlog, bench.options
    return {
        "backlog_jobs": b.jobs,
        "mean_candidates": round(b.predictions / b.jobs, 1),
        "partitions": PARTITIONS,
        "workload": bench.data.name,
        "items": bench.data.items,
        "users": bench.data.users,
        "hash_bits": bench.data.hash_bits,
        "scorer_max_jobs": 512,
        "scorer_max_wait_ms": 20,
        "latency_max_wait_ms": o.max_wait_ms,
        "latency_linger_ms": o.linger_ms,
        "latency_generator_linger_ms": o.generator_linger_ms,
        "repeats": o.repeats,
        "naive_sample_jobs": o.naive_jobs,
        "unbatched_sample_jobs": o.unbatched_jobs,
        "per_job_cached_sample_jobs": o.per_job_cached_jobs,
        "cpus": os.cpu_count(),
        "foreign_cpu_cores": round(_foreign_cores(bench), 2),
        "loadavg_1m_start": round(bench.loadavg_start, 2),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
    }


def measure(options: Options, environ: Mapping[str, str]) -> dict[str, Any]:
    # Byte-compile up front: a first run would otherwise count compiling the modules it imports
    # in its start-up CPU (~2 s), which no later start pays.
    compileall.compile_dir(REPO, quiet=1, maxlevels=2)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        root = Path(tmp)
        _say(f"writing the {options.workload} workload")
        data = write_workload(options.workload, root)
        np.save(root / "user_ids.npy", data.user_ids)
        np.save(root / "item_ids.npy", data.item_ids)
        with kafka_cluster(default_cache_dir(environ), environ.get("KAFKA_BOOTSTRAP")) as bootstrap:
            bench = Bench(bootstrap, data, options)
            try:
                results = run_all(bench)
            finally:
                bench.close()
    suffix = "" if options.workload == "standard" else f"-{options.workload}"
    results["plot"] = str(plot(results, OUT / f"e2e{suffix}.png"))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="smaller backlog, one round")
    parser.add_argument(
        "--max-wait-ms", type=int, default=10, help="latency phase batch.max_wait_ms"
    )
    parser.add_argument("--linger-ms", type=int, default=1, help="latency phase linger.ms")
    parser.add_argument(
        "--generator-linger-ms", type=int, default=5, help="latency phase generator linger.ms"
    )
    parser.add_argument(
        "--workload", default="standard", choices=("standard", "heavy"),
        help="standard: the demo workload; heavy: 24 crosses, 1M items (bench/workloads.py)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    options = options_for(
        args.quick, args.max_wait_ms, args.linger_ms, args.generator_linger_ms, args.workload
    )
    results = measure(options, os.environ)
    text = report(results) + "\n" + tracing_report(results)
    print(json.dumps(clean(results)) if args.json else text)


if __name__ == "__main__":
    main()
