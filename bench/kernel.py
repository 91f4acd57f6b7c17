"""Kernel benchmark: predictions per CPU-second of ``Scorer.rank`` against two reference points.

    python -m bench.kernel [--json] [--quick]

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
from scoring.model import LRModel
from scoring.reference import reference_predict
from scoring.synthetic import demo_spec, make_batch, random_items, random_model, random_users

N_ITEMS = 100_000
N_USERS = 20_000
HASH_BITS = 22
MEAN_CANDIDATES = 700


@dataclass(frozen=True, slots=True)
class Workload:
    model: LRModel
    items: ItemTable
    users: UserFeatures

    def jobs(self, rng: np.random.Generator, n_jobs: int) -> tuple[ScoringBatch, UserFeatures]:
        batch = make_batch(rng, self.model.spec, self.items.ids, N_USERS, n_jobs, MEAN_CANDIDATES)
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


def cpu_rate(work: Callable[[], int], min_seconds: float) -> float:
    """Units per CPU-second of ``work`` (returns units done), repeated for ``min_seconds``."""
    done, start = 0, time.process_time()
    while True:
        done += work()
        elapsed = time.process_time() - start
        if elapsed >= min_seconds:
            return done / elapsed


def kernel_rate(w: Workload, n_jobs: int, n_batches: int, seconds: float) -> float:
    rng = np.random.default_rng(n_jobs)
    batches = [w.jobs(rng, n_jobs) for _ in range(n_batches)]
    scorer = Scorer()
    scorer.rank(w.model, batches[0][0], batches[0][1], w.items)  # warm the item cache

    def run() -> int:
        for batch, users in batches:
            scorer.rank(w.model, batch, users, w.items)
        return sum(b.candidates.size for b, _ in batches)

    return cpu_rate(run, seconds)


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


def measure(quick: bool) -> dict[str, float | int]:
    w = build_workload()
    seconds = 1.0 if quick else 4.0
    spec = w.model.spec
    terms = len(spec.categorical_names()) + len(spec.crosses)
    gathers = gather_rate((1 << HASH_BITS) + 1, seconds)
    k512 = kernel_rate(w, 512, 1 if quick else 3, seconds)
    k64 = kernel_rate(w, 64, 4 if quick else 16, seconds)
    naive = naive_rate(w, 1 if quick else 4)
    weight_gathers = len(spec.job_crosses())
    item_row_gathers = 1 + (2 if w.items.index.is_dense else 3)
    kernel_gathers = weight_gathers + 1 + item_row_gathers
    ceiling = gathers / kernel_gathers
    return {
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
    }


def report(r: dict[str, float | int]) -> str:
    m = 1e6
    k64 = r["kernel_predictions_per_cpu_s_64"]
    return "\n".join(
        [
            f"kernel, 512-job batches : {r['kernel_predictions_per_cpu_s'] / m:7.2f} M pred/CPU-s",
            f"kernel,  64-job batches : {k64 / m:7.2f} M pred/CPU-s",
            f"naive per-candidate loop: {r['naive_predictions_per_cpu_s'] / m:7.3f} M pred/CPU-s",
            f"random gathers (16 MiB) : {r['gathers_per_s'] / m:7.1f} M/s",
            f"ceiling, {r['kernel_gathers_per_prediction']} gathers/pred "
            f"({r['kernel_weight_gathers_per_prediction']} weights, 1 partial, "
            f"{r['kernel_item_row_gathers_per_prediction']} item-row): "
            f"{r['ceiling_predictions_per_s'] / m:7.2f} M pred/s "
            f"(kernel/ceiling {r['kernel_over_ceiling']:.2f}, 64 jobs "
            f"{r['kernel_over_ceiling_64']:.2f})",
            f"uncached, {r['uncached_gathers_per_prediction']} gathers/pred : "
            f"{r['uncached_ceiling_predictions_per_s'] / m:7.2f} M pred/s",
            f"kernel / naive          : {r['kernel_over_naive']:7.0f}x",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="shorter runs, noisier figures")
    args = parser.parse_args(argv)
    results = measure(args.quick)
    print(json.dumps(results) if args.json else report(results))


if __name__ == "__main__":
    main()
