"""Figures of the end-to-end benchmark that fit the physics: start-up, whole-run efficiency, the
pipeline's share of the scorer's CPU, CPU efficiency with two workers, what one more worker costs
in memory, the latency the scorer adds, and the per-job numpy baseline.

- ``startup_cpu_s``: scorer CPU from its process start to its group's first assignment (imports,
  models, snapshots, the kernel's per-item state);
- ``whole_run_predictions_per_cpu_s``: predictions over every CPU-second the scorer used, start-up
  included;
- ``pipeline_overhead_share``: ``1 - kernel CPU / scorer CPU`` while draining; the kernel CPU is
  the scorer's own ``stream_scorer_kernel_cpu_seconds_total`` (CPU of the scoring thread inside
  ``Scorer.rank``), so decode, features, encode, produce, commit, metrics and librdkafka's
  threads are the rest;
- ``two_worker_cpu_efficiency``: predictions per CPU-second with 2 workers / with 1;
- ``extra_worker_uss_share``: the unique memory (USS) of each worker past the first, as a share of
  the first worker's RSS (all the memory one scorer holds);
- ``scorer_added_p99_ms_at_50pct``: p99 of ``scored_at`` - the input record's broker time stamp at
  50% load.

Every figure is a median over the rounds that measured it; None where not measured.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.e2e_report import Drain

# key -> (">=" or "<=", bound); the latency bound is batch.max_wait_ms + SCORER_ADDED_SLACK_MS
TARGETS: dict[str, tuple[str, float]] = {
    "predictions_per_cpu_s": (">=", 3e6), "over_naive": (">=", 30.0),
    "pipeline_overhead_share": ("<=", 0.25), "two_worker_cpu_efficiency": (">=", 0.9),
}  # fmt: skip
HEAVY_TARGETS: dict[str, tuple[str, float]] = {
    "over_per_job_numpy": (">=", 6.0), "whole_run_over_per_job_numpy": (">=", 4.0),
    "startup_cpu_s": ("<=", 3.0), "extra_worker_uss_share": ("<=", 0.15),
    "pipeline_overhead_share": ("<=", 0.25), "two_worker_cpu_efficiency": (">=", 0.9),
}  # fmt: skip
SCORER_ADDED_SLACK_MS = 25.0


def _median(drains: Sequence[Drain], key: Callable[[Drain], float]) -> float | None:
    values = [v for v in (key(d) for d in drains) if math.isfinite(v)]
    return float(statistics.median(values)) if values else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _extra_worker_share(drain: Drain) -> float:
    workers = [v for k, v in sorted(drain.memory.items()) if k.startswith("worker-")]
    if len(workers) < 2 or not workers[0].get("rss_mb"):
        return float("nan")
    return max(w["uss_mb"] for w in workers[1:]) / workers[0]["rss_mb"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def pipeline_figures(
    one: Sequence[Drain], two: Sequence[Drain], levels: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Start-up, whole-run, overhead, two-worker efficiency, memory and added latency."""
    ppc1 = _median(one, lambda d: d.predictions_per_cpu_s)
    ppc2 = _median(two, lambda d: d.predictions_per_cpu_s)
    half = next((lv for lv in levels if lv["load"] == 0.5), None)
    added = half.get("scorer_added_ms", {}).get("p99") if half else None

    def worker(name: str, key: str) -> float | None:
        return _median(two, lambda d: d.memory.get(name, {}).get(key, math.nan))

    return {
        "startup_cpu_s": _round(_median(one, lambda d: d.startup_cpu_s), 2),
        "whole_run_predictions_per_cpu_s": _round(
            _median(one, lambda d: d.predictions / d.total_cpu_s), 0
        ),
        "pipeline_overhead_share": _round(_median(one, lambda d: 1.0 - d.kernel_cpu_s / d.cpu_s)),
        "kernel_cpu_share": _round(_median(one, lambda d: d.kernel_cpu_s / d.cpu_s)),
        "two_worker_cpu_efficiency": _round(_ratio(ppc2, ppc1)),
        "scorer_added_p99_ms_at_50pct": added,
        "one_worker_rss_mb": _round(
            _median(one, lambda d: d.memory.get("scorer", {}).get("rss_mb", math.nan)), 1
        ),
        "first_worker_rss_mb": _round(worker("worker-0", "rss_mb"), 1),
        "first_worker_uss_mb": _round(worker("worker-0", "uss_mb"), 1),
        "extra_worker_uss_mb": _round(worker("worker-1", "uss_mb"), 1),
        "extra_worker_pss_mb": _round(worker("worker-1", "pss_mb"), 1),
        "extra_worker_uss_share": _round(_median(two, _extra_worker_share)),
    }


def per_job_figures(
    r: dict[str, Any], per_job: Sequence[Drain], cached: Sequence[Drain]
) -> dict[str, Any]:
    """The per-job numpy baseline(s) and the scorer's ratios over them (heavy workload)."""
    if not per_job:
        return {}
    base = _median(per_job, lambda d: d.predictions_per_cpu_s)
    out: dict[str, Any] = {
        "per_job_numpy_predictions_per_cpu_s": _round(base, 0),
        "per_job_numpy_startup_cpu_s": _round(_median(per_job, lambda d: d.startup_cpu_s), 2),
        "per_job_numpy_whole_run_predictions_per_cpu_s": _round(
            _median(per_job, lambda d: d.predictions / d.total_cpu_s), 0
        ),
        "per_job_numpy_jobs_per_s": _round(_median(per_job, lambda d: d.jobs_per_s), 1),
        "over_per_job_numpy": _round(_ratio(r["predictions_per_cpu_s"], base), 2),
        "whole_run_over_per_job_numpy": _round(
            _ratio(r.get("whole_run_predictions_per_cpu_s"), base), 2
        ),
    }
    if cached:
        cached_rate = _median(cached, lambda d: d.predictions_per_cpu_s)
        out["per_job_numpy_cached_predictions_per_cpu_s"] = _round(cached_rate, 0)
        out["over_per_job_numpy_cached"] = _round(
            _ratio(r["predictions_per_cpu_s"], cached_rate), 2
        )
    return out


def targets_met(r: dict[str, Any], workload: str, max_wait_ms: int) -> dict[str, bool | None]:
    """Each target of the workload: met, missed, or None when its figure was not measured."""
    targets = dict(HEAVY_TARGETS if workload == "heavy" else TARGETS)
    targets["scorer_added_p99_ms_at_50pct"] = ("<=", max_wait_ms + SCORER_ADDED_SLACK_MS)
    met: dict[str, bool | None] = {}
    for key, (op, bound) in targets.items():
        value = r.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            met[key] = None
        else:
            met[key] = bool(value >= bound) if op == ">=" else bool(value <= bound)
    return met
