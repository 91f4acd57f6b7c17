"""Kernel benchmark: predictions per CPU-second of ``Scorer.rank`` against three reference points.

    python -m bench.kernel [--json] [--quick] [--workload {standard,heavy,heavy-uniform}]

Measures, with ``time.process_time`` (CPU of every thread of the process):

- ``Scorer.rank`` on micro-batches of 64 and 512 jobs of ~700 Zipf-distributed candidates from
  100k items (demo spec, 2**22 weights, warm item cache);
- ``kernel_baseline.BaselineScorer.rank`` (the previous kernel and top-k: one weight gather per
  candidate and user/context x item cross) on the same 512-job batches. The two alternate in
  ``rounds`` rounds so drift on a shared machine hits both alike; the rates are medians over the
  rounds and ``kernel_speedup_vs_baseline`` the median of the per-round ratios (``_min``/``_max``
  give their spread);
- the per-candidate Python loop of ``scoring.reference`` on a small sample (the naive baseline);
- random float32 gathers per second from a table the size of the model's (``gathers_per_s``): a
  rough memory-bound ceiling. ``ceiling_predictions_per_s`` divides it by the random reads the
  measured kernel issues per prediction (``kernel_gathers_per_prediction``), read from its own
  per-batch plan:
  ``kernel_weight_gathers_per_prediction`` from the weight table (crosses with ``item.id``, and
  crosses hashed per candidate), ``kernel_item_row_gathers_per_prediction`` for the item's record
  (1) plus the id -> row lookup when the ids are not compact enough to address records by id
  (2 or 3), ``kernel_cell_reads_per_prediction`` from per-job grids and per-value cross rows, and
  ``kernel_item_partial_gathers_per_prediction`` (0: the partial logit is in the record). Every
  read is counted at the 16 MiB gather rate: cell reads hit small cache-resident tables and cost
  less, record reads hit a larger array, so ``kernel_over_ceiling`` is indicative, not a bound.
  Per-job work (user and context singles, grids, new cross rows) is amortised over ~700
  candidates and not counted. ``uncached_ceiling_predictions_per_s`` divides by every sparse term
  of a prediction instead (a kernel without item cache or encoding), for comparison only.

``max_abs_diff_vs_reference`` is the largest probability difference between ``Scorer`` and
``scoring.reference`` on a sample of jobs (unknown ids mixed in).

``--workload heavy`` is production-shaped (``synthetic.heavy_spec``): 1M items with 5 categorical
(50 to 20,000 values) and 16 dense fields, 100k users with 8 categorical fields, 12 user x item and
12 context x item crosses, 2**22 weights, ~700 Zipf(1.1) candidates per job, top 50. It reports
the two kernels on 512-job batches, the read counts, the sample difference, the CPU time to build
the workload (``build_cpu_s``) and the kernel's per-(model, item table) state
(``item_state_cpu_s``). ``--workload heavy-uniform`` is the same with item field values drawn
uniformly within their vocabularies instead of Zipf(1.3): no value dominates a field.
"""

from __future__ import annotations

import argparse
import json
import statistics
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
from scoring.terms import job_terms
from scoring.value_grid import plan_reads

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


def build_heavy_workload(uniform_fields: bool = False) -> Workload:
    spec = heavy_spec()
    return Workload(
        model=random_model("bench-heavy", "1", spec, hash_bits=HASH_BITS, seed=3),
        items=heavy_items(HEAVY_ITEMS, spec, seed=1, uniform_fields=uniform_fields),
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


@dataclass(frozen=True, slots=True)
class Rates:
    """Predictions per CPU-second per round, of the kernel and (if timed) the baseline."""

    kernel: list[float]
    baseline: list[float]

    def ratios(self) -> list[float]:
        return [k / b for k, b in zip(self.kernel, self.baseline, strict=True)]


def kernel_rates(
    w: Workload, n_jobs: int, n_batches: int, seconds: float, rounds: int, baseline: bool = True
) -> Rates:
    """Rates of ``Scorer.rank`` (and ``BaselineScorer.rank``) on the same batches, alternating
    in ``rounds`` rounds of ``seconds / rounds`` each (warm item caches)."""
    rng = np.random.default_rng(n_jobs)
    batches = [w.jobs(rng, n_jobs) for _ in range(n_batches)]
    scorers = [Scorer(), BaselineScorer()] if baseline else [Scorer()]
    rates: list[list[float]] = [[] for _ in scorers]
    for scorer in scorers:
        scorer.rank(w.model, batches[0][0], batches[0][1], w.items)  # warm the item cache
    for _ in range(rounds):
        for i, scorer in enumerate(scorers):

            def run(scorer: Scorer = scorer) -> int:
                for batch, users in batches:
                    scorer.rank(w.model, batch, users, w.items)
                return sum(b.candidates.size for b, _ in batches)

            rates[i].append(cpu_rate(run, seconds / rounds))
    return Rates(rates[0], rates[1] if baseline else [])


def speedup(rates: Rates) -> dict[str, float]:
    """Median rates over the rounds and the median, min and max per-round kernel/baseline."""
    ratios = rates.ratios()
    return {
        "baseline_kernel_predictions_per_cpu_s": statistics.median(rates.baseline),
        "kernel_speedup_vs_baseline": statistics.median(ratios),
        "kernel_speedup_vs_baseline_min": min(ratios),
        "kernel_speedup_vs_baseline_max": max(ratios),
    }


def kernel_reads(w: Workload) -> dict[str, int]:
    """Random reads per prediction of ``Scorer`` on a 512-job batch, from its own plan."""
    scorer = Scorer()
    state = scorer.item_state(w.model, w.items)
    batch, users = w.jobs(np.random.default_rng(512), 512)
    jobs = job_terms(w.model.spec, w.model.hash_bits, users, batch.contexts)
    table = scorer.model_state(w.model).table
    reads = plan_reads(state.encoded, table, jobs.left, batch.candidates.size)
    lookup = 0 if state.rows.by_id else (2 if w.items.index.is_dense else 3)
    counts = {
        "kernel_weight_gathers_per_prediction": state.encoded.direct.size
        + reads.hashed_columns.size,
        "kernel_item_partial_gathers_per_prediction": 0,
        "kernel_item_row_gathers_per_prediction": 1 + lookup,
        "kernel_cell_reads_per_prediction": len(reads.sources),
    }
    counts["kernel_gathers_per_prediction"] = sum(counts.values())
    return counts


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
    seconds, rounds = (1.0, 3) if quick else (4.0, 8)
    spec = w.model.spec
    terms = len(spec.categorical_names()) + len(spec.crosses)
    gathers = gather_rate((1 << HASH_BITS) + 1, seconds)
    r512 = kernel_rates(w, 512, 1 if quick else 3, 2 * seconds, rounds)
    r64 = kernel_rates(w, 64, 4 if quick else 16, seconds, rounds, baseline=False)
    k512, k64 = statistics.median(r512.kernel), statistics.median(r64.kernel)
    naive = naive_rate(w, 1 if quick else 4)
    reads = kernel_reads(w)
    ceiling = gathers / reads["kernel_gathers_per_prediction"]
    return {
        "workload": "standard",
        "batch_jobs": 512,
        "mean_candidates": MEAN_CANDIDATES,
        "n_items": N_ITEMS,
        "hash_bits": HASH_BITS,
        "rounds": rounds,
        "kernel_predictions_per_cpu_s": k512,
        "kernel_predictions_per_cpu_s_64": k64,
        "naive_predictions_per_cpu_s": naive,
        "gathers_per_s": gathers,
        **reads,
        "ceiling_predictions_per_s": ceiling,
        "kernel_over_ceiling": k512 / ceiling,
        "kernel_over_ceiling_64": k64 / ceiling,
        "uncached_gathers_per_prediction": terms,
        "uncached_ceiling_predictions_per_s": gathers / terms,
        "kernel_over_naive": k512 / naive,
        "kernel_over_naive_64": k64 / naive,
        **speedup(r512),
        "max_abs_diff_vs_reference": reference_diff(w, 2),
    }


def measure_heavy(quick: bool, uniform_fields: bool = False) -> dict[str, float | int | str]:
    start = time.process_time()
    w = build_heavy_workload(uniform_fields)
    built = time.process_time() - start
    start = time.process_time()
    Scorer().item_state(w.model, w.items)
    item_state = time.process_time() - start
    seconds, rounds = (2.0, 3) if quick else (8.0, 8)
    gathers = gather_rate((1 << HASH_BITS) + 1, seconds / 4)
    rates = kernel_rates(w, 512, 1 if quick else 3, seconds, rounds)
    k512 = statistics.median(rates.kernel)
    reads = kernel_reads(w)
    ceiling = gathers / reads["kernel_gathers_per_prediction"]
    return {
        "workload": "heavy-uniform" if uniform_fields else "heavy",
        "batch_jobs": 512,
        "mean_candidates": MEAN_CANDIDATES,
        "n_items": HEAVY_ITEMS,
        "n_users": HEAVY_USERS,
        "hash_bits": HASH_BITS,
        "job_crosses": len(w.model.spec.job_crosses()),
        "rounds": rounds,
        "build_cpu_s": built,
        "item_state_cpu_s": item_state,
        "kernel_predictions_per_cpu_s": k512,
        **speedup(rates),
        "gathers_per_s": gathers,
        **reads,
        "ceiling_predictions_per_s": ceiling,
        "kernel_over_ceiling": k512 / ceiling,
        "max_abs_diff_vs_reference": reference_diff(w, 2),
    }


def report(r: dict[str, float | int | str]) -> str:
    m = 1e6
    if r["workload"] != "standard":
        return report_heavy(r)
    r_: dict[str, float | int] = {k: v for k, v in r.items() if not isinstance(v, str)}
    k64 = r_["kernel_predictions_per_cpu_s_64"]
    return "\n".join(
        [
            f"kernel, 512-job batches : {r_['kernel_predictions_per_cpu_s'] / m:7.2f} M pred/CPU-s",
            f"kernel,  64-job batches : {k64 / m:7.2f} M pred/CPU-s",
            f"naive per-candidate loop: {r_['naive_predictions_per_cpu_s'] / m:7.3f} M pred/CPU-s",
            f"random gathers (16 MiB) : {r_['gathers_per_s'] / m:7.1f} M/s",
            f"{reads_line(r_)}: {r_['ceiling_predictions_per_s'] / m:7.2f} M pred/s "
            f"(kernel/ceiling {r_['kernel_over_ceiling']:.2f}, 64 jobs "
            f"{r_['kernel_over_ceiling_64']:.2f})",
            f"uncached, {r_['uncached_gathers_per_prediction']} gathers/pred : "
            f"{r_['uncached_ceiling_predictions_per_s'] / m:7.2f} M pred/s",
            f"kernel / naive          : {r_['kernel_over_naive']:7.0f}x",
            f"baseline kernel, 512    : "
            f"{r_['baseline_kernel_predictions_per_cpu_s'] / m:7.2f} M pred/CPU-s",
            speedup_line(r_),
            f"max |kernel - reference|: {r_['max_abs_diff_vs_reference']:.2e}",
        ]
    )


def reads_line(r: dict[str, float | int]) -> str:
    return (
        f"ceiling, {r['kernel_gathers_per_prediction']} reads/pred "
        f"({r['kernel_weight_gathers_per_prediction']} weights, "
        f"{r['kernel_item_row_gathers_per_prediction']} item-row, "
        f"{r['kernel_cell_reads_per_prediction']} cells)"
    )


def speedup_line(r: dict[str, float | int]) -> str:
    return (
        f"kernel / baseline       : {r['kernel_speedup_vs_baseline']:7.2f}x median of "
        f"{r['rounds']} rounds ({r['kernel_speedup_vs_baseline_min']:.2f}-"
        f"{r['kernel_speedup_vs_baseline_max']:.2f})"
    )


def report_heavy(r: dict[str, float | int | str]) -> str:
    m = 1e6
    r_: dict[str, float | int] = {k: v for k, v in r.items() if not isinstance(v, str)}
    return "\n".join(
        [
            f"{r['workload']} workload built in {r_['build_cpu_s']:.1f} CPU-s, "
            f"kernel item state in {r_['item_state_cpu_s']:.1f} CPU-s",
            f"baseline kernel, 512    : "
            f"{r_['baseline_kernel_predictions_per_cpu_s'] / m:7.2f} M pred/CPU-s",
            f"kernel, 512-job batches : {r_['kernel_predictions_per_cpu_s'] / m:7.2f} M pred/CPU-s",
            speedup_line(r_),
            f"{reads_line(r_)}: {r_['ceiling_predictions_per_s'] / m:7.2f} M pred/s "
            f"(kernel/ceiling {r_['kernel_over_ceiling']:.2f})",
            f"max |kernel - reference|: {r_['max_abs_diff_vs_reference']:.2e}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="shorter runs, noisier figures")
    parser.add_argument(
        "--workload",
        choices=("standard", "heavy", "heavy-uniform"),
        default="standard",
        help="what to score",
    )
    args = parser.parse_args(argv)
    if args.workload == "standard":
        results = measure(args.quick)
    else:
        results = measure_heavy(args.quick, uniform_fields=args.workload == "heavy-uniform")
    print(json.dumps(results) if args.json else report(results))


if __name__ == "__main__":
    main()
