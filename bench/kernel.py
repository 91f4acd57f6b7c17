"""Kernel benchmark: predictions per CPU-second of ``Scorer.rank`` against two reference points.

    python -m bench.kernel [--json] [--quick] [--workload {standard,heavy}]

Measures, with ``time.process_time`` (CPU of every thread of the process):

- ``Scorer.rank`` on micro-batches of 64 and 512 jobs of ~700 Zipf-distributed candidates from
  100k items (demo spec, 2**22 weights, warm item cache);
- the per-candidate Python loop of ``scoring.reference`` on a small sample (the naive baseline);
- random float32 gathers per second from a table the size of the model's: the memory-bound
  ceiling. ``ceiling_predictions_per_s`` divides it by the gathers this kernel issues per
  prediction (``kernel_gathers_per_prediction``): one weight per user/context x item cross, the
  item's cached partial logit, and the item-row gathers (its row of cross halves, and the id ->
  row lookup with its verification). Per-job gathers (user and context singles) are amortised over
  ~700 candidates and not counted. The item-side gathers read tables smaller than the weights, so
  they are cheaper than the measured gather: the ceiling is a lower bound and the ratio
  ``kernel_over_ceiling`` an upper bound of the kernel's efficiency.
  ``uncached_ceiling_predictions_per_s`` divides by every sparse term of a prediction instead
  (what a kernel without the item cache would gather), for comparison only.

Both workloads also time ``kernel_baseline.BaselineScorer`` (the previous kernel, one weight gather
per candidate and cross) in the same run, alternating with ``Scorer`` so drift on a shared machine
hits both alike (``kernel_speedup_vs_baseline``), and report ``max_abs_diff_vs_reference``: the
largest probability difference between ``Scorer`` and ``scoring.reference`` on a sample of jobs.

``--workload heavy`` is production-shaped (``synthetic.heavy_spec``): 1M items with 5 categorical
(50 to 20,000 values) and 16 dense fields, 100k users with 8 categorical fields, 12 user x item and
12 context x item crosses, 2**22 weights, ~700 Zipf(1.1) candidates per job, top 50. It reports
the two kernels on 512-job batches, the sample difference and the CPU time to build the workload.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scoring.batch import ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer
from scoring.kernel_baseline import BaselineScorer
from scoring.model import LRModel
from scoring.reference import reference_predict
from scoring.synthetic import (
    demo_spec,
    heavy_items,
    heavy_spec,
    heavy_users,
    make_batch,
    random_items,
    random_model,
    random_users,
)

N_ITEMS = 100_000
N_USERS = 20_000
HEAVY_ITEMS = 1_000_000
HEAVY_USERS = 100_000
HASH_BITS = 22
MEAN_CANDIDATES = 700
TOP_K = 50


@dataclass(frozen=True, slots=True)
class Workload:
    model: LRModel
    items: ItemTable
    users: UserFeatures
    n_users: int = N_USERS

    def jobs(self, rng: np.random.Generator, n_jobs: int) -> tuple[ScoringBatch, UserFeatures]:
        spec, ids = self.model.spec, self.items.ids
        batch = make_batch(rng, spec, ids, self.n_users, n_jobs, MEAN_CANDIDATES, TOP_K)
        return batch, self.users.take(batch.user_ids)


def build_workload() -> Workload:
    spec = demo_spec()
    raw_items = random_items(N_ITEMS, spec, seed=1)
    raw_users = random_users(N_USERS, spec, seed=2)
    return Workload(
        model=random_model("bench", "1", spec, hash_bits=HASH_BITS, seed=3),
        items=ItemTable.from_raw(raw_items.ids, raw_items.categorical, raw_items.dense),
        users=UserFeatures.from_raw(raw_users.categorical, raw_users.dense),
    )


def build_heavy_workload() -> Workload:
    spec = heavy_spec()
    return Workload(
        model=random_model("bench-heavy", "1", spec, hash_bits=HASH_BITS, seed=3),
        items=heavy_items(HEAVY_ITEMS, spec, seed=1),
        users=heavy_users(HEAVY_USERS, spec, seed=2),
        n_users=HEAVY_USERS,
    )


def cpu_rate(work: Callable[[], int], min_seconds: float) -> float:
    """Units per CPU-second of ``work`` (returns units done), repeated for ``min_seconds``."""
    done, start = 0, time.process_time()
    while True:
        done += work()
        elapsed = time.process_time() - start
        if elapsed >= min_seconds:
            return done / elapsed


def kernel_rates(
    w: Workload, n_jobs: int, n_batches: int, seconds: float, rounds: int = 2
) -> tuple[float, float]:
    """Predictions per CPU-second of ``Scorer.rank`` and ``BaselineScorer.rank`` on the same
    batches, measured in alternating rounds (warm item caches)."""
    rng = np.random.default_rng(n_jobs)
    batches = [w.jobs(rng, n_jobs) for _ in range(n_batches)]
    scorers = [Scorer(), BaselineScorer()]
    done, spent = [0, 0], [0.0, 0.0]
    for scorer in scorers:
        scorer.rank(w.model, batches[0][0], batches[0][1], w.items)  # warm the item cache
    for _ in range(rounds):
        for i, scorer in enumerate(scorers):

            def run(scorer: Scorer = scorer) -> int:
                for batch, users in batches:
                    scorer.rank(w.model, batch, users, w.items)
                return sum(b.candidates.size for b, _ in batches)

            start = time.process_time()
            done[i] += round(cpu_rate(run, seconds / rounds) * (time.process_time() - start))
            spent[i] += time.process_time() - start
    return done[0] / spent[0], done[1] / spent[1]


def reference_diff(w: Workload, n_jobs: int) -> float:
    """Largest |Scorer - reference| probability on ``n_jobs`` jobs (unknown ids mixed in)."""
    batch, users = w.jobs(np.random.default_rng(98), n_jobs)
    unknown = np.arange(-5, 0, dtype=np.int64)  # ids no table holds
    candidates = batch.candidates.copy()
    candidates[:: max(candidates.size // unknown.size, 1)][: unknown.size] = unknown
    batch = ScoringBatch(batch.user_ids, batch.contexts, candidates, batch.row_splits, batch.top_k)
    got = Scorer().predict(w.model, batch, users, w.items).astype(np.float64)
    return float(np.abs(got - reference_predict(w.model, batch, users, w.items)).max())


def naive_rate(w: Workload, n_jobs: int) -> float:
    batch, users = w.jobs(np.random.default_rng(99), n_jobs)
    return cpu_rate(lambda: reference_predict(w.model, batch, users, w.items).size, 0.5)


def gather_rate(table_size: int, seconds: float) -> float:
    rng = np.random.default_rng(7)
    table = rng.standard_normal(table_size).astype(np.float32)
    idx = rng.integers(0, table_size, size=1 << 22)
    out = np.empty(idx.size, dtype=np.float32)

    def run() -> int:
        np.take(table, idx, out=out, mode="clip")
        return int(idx.size)

    run()
    return cpu_rate(run, seconds)


def measure(quick: bool) -> dict[str, float | int | str]:
    w = build_workload()
    seconds = 1.0 if quick else 4.0
    spec = w.model.spec
    terms = len(spec.categorical_names()) + len(spec.crosses)
    gathers = gather_rate((1 << HASH_BITS) + 1, seconds)
    k512, base512 = kernel_rates(w, 512, 1 if quick else 3, seconds)
    k64, _ = kernel_rates(w, 64, 4 if quick else 16, seconds)
    naive = naive_rate(w, 1 if quick else 4)
    weight_gathers = len(spec.job_crosses())
    item_row_gathers = 1 + (2 if w.items.index.is_dense else 3)
    kernel_gathers = weight_gathers + 1 + item_row_gathers
    ceiling = gathers / kernel_gathers
    return {
        "workload": "standard",
        "batch_jobs": 512,
        "mean_candidates": MEAN_CANDIDATES,
        "n_items": N_ITEMS,
        "hash_bits": HASH_BITS,
        "kernel_predictions_per_cpu_s": k512,
        "kernel_predictions_per_cpu_s_64": k64,
        "naive_predictions_per_cpu_s": naive,
        "gathers_per_s": gathers,
        "kernel_weight_gathers_per_prediction": weight_gathers,
        "kernel_item_partial_gathers_per_prediction": 1,
        "kernel_item_row_gathers_per_prediction": item_row_gathers,
        "kernel_gathers_per_prediction": kernel_gathers,
        "ceiling_predictions_per_s": ceiling,
        "kernel_over_ceiling": k512 / ceiling,
        "kernel_over_ceiling_64": k64 / ceiling,
        "uncached_gathers_per_prediction": terms,
        "uncached_ceiling_predictions_per_s": gathers / terms,
        "kernel_over_naive": k512 / naive,
        "kernel_over_naive_64": k64 / naive,
        "baseline_kernel_predictions_per_cpu_s": base512,
        "kernel_speedup_vs_baseline": k512 / base512,
        "max_abs_diff_vs_reference": reference_diff(w, 2),
    }


def measure_heavy(quick: bool) -> dict[str, float | int | str]:
    start = time.process_time()
    w = build_heavy_workload()
    built = time.process_time() - start
    k512, base512 = kernel_rates(w, 512, 1 if quick else 3, 2.0 if quick else 8.0)
    return {
        "workload": "heavy",
        "batch_jobs": 512,
        "mean_candidates": MEAN_CANDIDATES,
        "n_items": HEAVY_ITEMS,
        "n_users": HEAVY_USERS,
        "hash_bits": HASH_BITS,
        "job_crosses": len(w.model.spec.job_crosses()),
        "build_cpu_s": built,
        "baseline_kernel_predictions_per_cpu_s": base512,
        "kernel_predictions_per_cpu_s": k512,
        "kernel_speedup_vs_baseline": k512 / base512,
        "max_abs_diff_vs_reference": reference_diff(w, 2),
    }


def report(r: dict[str, float | int | str]) -> str:
    m = 1e6
    if r["workload"] == "heavy":
        return report_heavy(r)
    r_: dict[str, float | int] = {k: v for k, v in r.items() if not isinstance(v, str)}
    k64 = r_["kernel_predictions_per_cpu_s_64"]
    return "\n".join(
        [
            f"kernel, 512-job batches : {r_['kernel_predictions_per_cpu_s'] / m:7.2f} M pred/CPU-s",
            f"kernel,  64-job batches : {k64 / m:7.2f} M pred/CPU-s",
            f"naive per-candidate loop: {r_['naive_predictions_per_cpu_s'] / m:7.3f} M pred/CPU-s",
            f"random gathers (16 MiB) : {r_['gathers_per_s'] / m:7.1f} M/s",
            f"ceiling, {r_['kernel_gathers_per_prediction']} gathers/pred "
            f"({r_['kernel_weight_gathers_per_prediction']} weights, 1 partial, "
            f"{r_['kernel_item_row_gathers_per_prediction']} item-row): "
            f"{r_['ceiling_predictions_per_s'] / m:7.2f} M pred/s "
            f"(kernel/ceiling {r_['kernel_over_ceiling']:.2f}, 64 jobs "
            f"{r_['kernel_over_ceiling_64']:.2f})",
            f"uncached, {r_['uncached_gathers_per_prediction']} gathers/pred : "
            f"{r_['uncached_ceiling_predictions_per_s'] / m:7.2f} M pred/s",
            f"kernel / naive          : {r_['kernel_over_naive']:7.0f}x",
            f"baseline kernel, 512    : "
            f"{r_['baseline_kernel_predictions_per_cpu_s'] / m:7.2f} M pred/CPU-s "
            f"(kernel {r_['kernel_speedup_vs_baseline']:.2f}x)",
            f"max |kernel - reference|: {r_['max_abs_diff_vs_reference']:.2e}",
        ]
    )


def report_heavy(r: dict[str, float | int | str]) -> str:
    m = 1e6
    return "\n".join(
        [
            f"heavy workload built in {r['build_cpu_s']:.1f} CPU-s",
            f"baseline kernel, 512-job batches: "
            f"{float(r['baseline_kernel_predictions_per_cpu_s']) / m:7.2f} M pred/CPU-s",
            f"kernel, 512-job batches         : "
            f"{float(r['kernel_predictions_per_cpu_s']) / m:7.2f} M pred/CPU-s",
            f"kernel / baseline               : {r['kernel_speedup_vs_baseline']:7.2f}x",
            f"max |kernel - reference|        : {r['max_abs_diff_vs_reference']:.2e}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="shorter runs, noisier figures")
    parser.add_argument(
        "--workload", choices=("standard", "heavy"), default="standard", help="what to score"
    )
    args = parser.parse_args(argv)
    results = measure_heavy(args.quick) if args.workload == "heavy" else measure(args.quick)
    print(json.dumps(results) if args.json else report(results))


if __name__ == "__main__":
    main()
