"""Results of the end-to-end benchmark: the backlog drains, the JSON object and the table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.e2e_figures import per_job_figures, pipeline_figures, targets_met


@dataclass(frozen=True, slots=True)
class Drain:
    """One consumer through (a sample of) the backlog."""

    name: str
    jobs: int
    predictions: int
    wall_s: float
    cpu_s: float
    steady_jobs_per_s: float  # from 10% to 90% of the target: start-up and tail excluded
    broker_cpu_s: float | None  # the local broker's CPU meanwhile (None: external cluster)
    # jobs/s once every worker holds partitions (the group stable): excludes the start-up
    # rebalance that moves partitions from the first worker to join to the others
    stable_jobs_per_s: float = float("nan")
    startup_cpu_s: float = float("nan")  # CPU from the process's start to its first assignment
    total_cpu_s: float = float("nan")  # CPU from the process's start to the target committed
    kernel_cpu_s: float = float("nan")  # the scorer's own kernel CPU counter (scorers only)
    # smaps_rollup of each process at the end (scorer, or parent and worker-0..N-1), MiB
    memory: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s

    @property
    def predictions_per_cpu_s(self) -> float:
        return self.predictions / self.cpu_s


def steady_rate(series: list[tuple[float, int]], target: int) -> float:
    lo = next((s for s in series if s[1] >= 0.1 * target), series[0])
    hi = next((s for s in series if s[1] >= 0.9 * target), series[-1])
    return (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else float("nan")


def _median(drains: list[Drain], key: Callable[[Drain], float]) -> float:
    return float(statistics.median(key(d) for d in drains))


def summarize(
    one: list[Drain], two: list[Drain], passthrough: list[Drain], unbatched: Drain,
    naive: Drain, levels: list[dict[str, Any]], config: dict[str, Any],
    per_job: Sequence[Drain] = (), per_job_cached: Sequence[Drain] = (),
) -> dict[str, Any]:  # fmt: skip
    """The headline figures (medians over rounds), every drain and latency level, the config.

    ``config["workload"]`` and ``config["latency_max_wait_ms"]`` choose the targets."""

    ppc = _median(one, lambda d: d.predictions_per_cpu_s)
    jps, pt = _median(one, lambda d: d.jobs_per_s), _median(passthrough, lambda d: d.jobs_per_s)
    jps2 = _median(two, lambda d: d.jobs_per_s)
    stable1, stable2 = (_median(d, lambda d: d.stable_jobs_per_s) for d in (one, two))
    half = next(lv for lv in levels if lv["load"] == 0.5)
    r: dict[str, Any] = {
        "predictions_per_cpu_s": round(ppc),
        "naive_predictions_per_cpu_s": round(naive.predictions_per_cpu_s),
        "unbatched_predictions_per_cpu_s": round(unbatched.predictions_per_cpu_s),
        "scorer_jobs_per_s": round(jps, 1),
        "passthrough_jobs_per_s": round(pt, 1),
        "p99_ms_at_50pct": half["readable_ms"]["p99"],
        "p99_scored_ms_at_50pct": half["scored_ms"]["p99"],
        "two_worker_speedup": round(stable2 / stable1, 3),
        "two_worker_speedup_from_first_assignment": round(jps2 / jps, 3),
        "scorer_jobs_per_s_2_workers": round(jps2, 1),
        "predictions_per_cpu_s_2_workers": round(_median(two, lambda d: d.predictions_per_cpu_s)),
        "scorer_steady_jobs_per_s": round(_median(one, lambda d: d.steady_jobs_per_s), 1),
        "two_worker_steady_speedup": round(
            _median(two, lambda d: d.steady_jobs_per_s)
            / _median(one, lambda d: d.steady_jobs_per_s), 3),
        "passthrough_jobs_per_cpu_s": round(_median(passthrough, lambda d: d.jobs / d.cpu_s)),
        "unbatched_jobs_per_s": round(unbatched.jobs_per_s, 1),
        "naive_jobs_per_s": round(naive.jobs_per_s, 2),
        "latency": levels,
        "drains": [{**asdict(d), "jobs_per_s": round(d.jobs_per_s, 1),
                    "predictions_per_cpu_s": round(d.predictions_per_cpu_s)}
                   for d in [*one, *two, *passthrough, unbatched, naive, *per_job,
                             *per_job_cached]],
        "config": config,
    }  # fmt: skip
    r["over_naive"] = round(ppc / r["naive_predictions_per_cpu_s"], 1)
    r["over_passthrough"] = round(jps / pt, 3)
    r.update(pipeline_figures(one, two, levels))
    r.update(per_job_figures(r, per_job, per_job_cached))
    r["targets_met"] = targets_met(
        r, config.get("workload", "standard"), config.get("latency_max_wait_ms", 10)
    )
    return r


def _cores(level: dict[str, Any]) -> str:
    keys = ("scorer_cpu_s", "generator_cpu_s", "broker_cpu_s", "machine_busy_cpu_s")
    return "/".join(f"{level.get(k, float('nan')) / level['window_s']:.2f}" for k in keys)


def report(r: dict[str, Any]) -> str:
    m, cfg = 1e6, r["config"]
    lines = [
        f"end to end, {cfg['backlog_jobs']:,} jobs x ~{cfg['mean_candidates']:.0f} candidates, "
        f"{cfg['partitions']} partitions, {cfg['cpus']} CPUs shared with broker and load",
        f"  {'consumer':<22}{'jobs/s':>10}{'M pred/CPU-s':>14}",
        f"  {'scorer, 1 worker':<22}{r['scorer_jobs_per_s']:>10,.0f}"
        f"{r['predictions_per_cpu_s'] / m:>14.2f}",
        f"  {'scorer, 2 workers':<22}{r['scorer_jobs_per_s_2_workers']:>10,.0f}"
        f"{r['predictions_per_cpu_s_2_workers'] / m:>14.2f}",
        f"  {'unbatched (1 job)':<22}{r['unbatched_jobs_per_s']:>10,.0f}"
        f"{r['unbatched_predictions_per_cpu_s'] / m:>14.2f}",
        f"  {'naive (Python loop)':<22}{r['naive_jobs_per_s']:>10,.1f}"
        f"{r['naive_predictions_per_cpu_s'] / m:>14.4f}",
        f"  {'passthrough (bytes)':<22}{r['passthrough_jobs_per_s']:>10,.0f}"
        f"{'-':>14}   ({r['passthrough_jobs_per_cpu_s']:,} jobs/CPU-s)",
        f"  scorer/naive {r['over_naive']:.0f}x, scorer/passthrough {r['over_passthrough']:.2f}, "
        f"2 workers/1 {r['two_worker_speedup']:.2f} once the group is stable "
        f"({r['two_worker_speedup_from_first_assignment']:.2f} from the first assignment, "
        f"{r['two_worker_steady_speedup']:.2f} from 10% to 90%)",
        f"latency (batch.max_wait_ms={cfg['latency_max_wait_ms']}, linger.ms="
        f"{cfg['latency_linger_ms']}, generator linger.ms {cfg['latency_generator_linger_ms']}),"
        " ms after created_at, p50/p95/p99",
        f"  {'load':>5}{'offered/s':>11}{'achieved/s':>12}{'scored_at':>22}{'readable':>22}"
        f"{'out leg p99':>12}{'CPUs: scorer/gen/broker/all':>30}",
    ]
    for lv in r["latency"]:
        s, a = lv["scored_ms"], lv["readable_ms"]
        lines.append(
            f"  {lv['load']:>5.0%}{lv['offered_jobs_per_s']:>11,.0f}"
            f"{lv['achieved_jobs_per_s']:>12,.0f}"
            f"{s['p50']:>8.1f}/{s['p95']:>6.1f}/{s['p99']:>6.1f}"
            f"{a['p50']:>8.1f}/{a['p95']:>6.1f}/{a['p99']:>6.1f}"
            f"{lv['list_readable_ms']['p99']:>12.1f}{_cores(lv):>30}"
        )
    lines += _figure_lines(r)
    missed = [k for k, ok in r["targets_met"].items() if ok is False]
    lines.append(f"targets missed: {', '.join(missed) or 'none'}; plot: {r['plot']}")
    lines.append(
        f"load average {cfg['loadavg_1m_start']} at start, {cfg['loadavg_1m_end']} at end; "
        f"other users' work took {cfg['foreign_cpu_cores']} CPUs on average"
    )
    return "\n".join(lines)


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _figure_lines(r: dict[str, Any]) -> list[str]:
    lines = [
        f"start-up {_num(r.get('startup_cpu_s'), '.2f')} CPU-s, whole run "
        f"{_num(r.get('whole_run_predictions_per_cpu_s'), ',.0f')} pred/CPU-s; pipeline "
        f"{_num(r.get('pipeline_overhead_share'), '.2f')} of the scorer's CPU (kernel "
        f"{_num(r.get('kernel_cpu_share'), '.2f')}); 2-worker CPU efficiency "
        f"{_num(r.get('two_worker_cpu_efficiency'), '.2f')}; scorer-added p99 at 50% "
        f"{_num(r.get('scorer_added_p99_ms_at_50pct'), '.1f')} ms",
        f"memory: 1 worker RSS {_num(r.get('one_worker_rss_mb'), '.0f')} MiB; 2 workers: first "
        f"RSS {_num(r.get('first_worker_rss_mb'), '.0f')} MiB, extra worker USS "
        f"{_num(r.get('extra_worker_uss_mb'), '.0f')} MiB "
        f"({_num(r.get('extra_worker_uss_share'), '.2f')} of the first's RSS)",
    ]
    if "per_job_numpy_predictions_per_cpu_s" in r:
        lines.append(
            f"per-job numpy: {_num(r['per_job_numpy_predictions_per_cpu_s'], ',.0f')} pred/CPU-s"
            f" (start-up {_num(r.get('per_job_numpy_startup_cpu_s'), '.2f')} CPU-s); scorer "
            f"{_num(r.get('over_per_job_numpy'), '.2f')}x while scoring, "
            f"{_num(r.get('whole_run_over_per_job_numpy'), '.2f')}x over its whole run; per-job"
            f" with cached item terms "
            f"{_num(r.get('per_job_numpy_cached_predictions_per_cpu_s'), ',.0f')} pred/CPU-s"
        )
    return lines


def clean(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None: strict JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
