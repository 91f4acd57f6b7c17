"""Feature cost per micro-batch against a real Feast server: cold and warm item cache.

    python -m bench.features [--items 10000] [--users 5000] [--jobs 64] [--candidates 700]
                             [--batches 10] [--json]

Starts the same tooling as the ``feast`` tests (Feast venv, a SQLite-backed feature repo
materialized from the demo CSV files, ``feast serve`` on 127.0.0.1), then times
`HttpFeatureSource.fetch` on micro-batches of ``--jobs`` jobs with ~``--candidates`` Zipf-popular
candidates each (wall time; the server shares the machine's cores):

- cold: a fresh source per batch, so every unique item and user is requested (wall ms, and
  the client's own CPU ms);
- warm: one source whose item cache already holds the catalogue (after ``warm_up``); only users
  go to the server, and the item table keeps its token while the cache does not change;
- the kernel's extra cost for a fresh table (``Scorer.rank`` with a new token vs a reused one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from consumer.clock import SystemClock
from consumer.config import FeatureConfig
from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.features.http import HttpFeatureSource
from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry
from scoring.batch import ScoringBatch
from scoring.kernel import Scorer
from scoring.synthetic import make_batch
from tests.feast.server import FeastServer, FeatureRepo, build_feature_repo, feast_venv


def _source(url: str, repo: FeatureRepo) -> tuple[HttpFeatureSource, CollectorRegistry]:
    config = FeatureConfig(
        source="http", url=url, user_features=repo.users.refs(),
        item_features=repo.items.refs(), timeout_ms=10_000,
    )  # fmt: skip
    registry = CollectorRegistry()
    return HttpFeatureSource.from_config(config, Metrics(registry), SystemClock()), registry


def _rows(registry: CollectorRegistry, entity: str) -> float:
    value = registry.get_sample_value(
        "stream_scorer_feature_rows_requested_total", {"entity": entity}
    )
    return value or 0.0


async def _timed(source: HttpFeatureSource, batch: ScoringBatch) -> tuple[float, float]:
    """Wall ms and this process's CPU ms (the client's own work; the server is another process)."""
    started, cpu = time.perf_counter(), time.process_time()
    features = await source.fetch(batch.user_ids, batch.candidates)
    elapsed = (time.perf_counter() - started) * 1000
    if features.degraded:
        raise RuntimeError("a benchmark fetch degraded: the server did not answer in time")
    return elapsed, (time.process_time() - cpu) * 1000


async def _run(
    args: argparse.Namespace, url: str, repo: FeatureRepo, data: DemoData
) -> dict[str, Any]:
    data_items = data.item_ids
    model = ModelRegistry.from_directory(data.models_dir).resolve("demo-lr")
    assert model is not None
    rng = np.random.default_rng(3)
    batches = [
        make_batch(rng, model.spec, data_items, args.users, args.jobs, args.candidates)
        for _ in range(args.batches)
    ]
    cold_ms, cold_cpu, cold_rows = [], [], []
    for batch in batches:
        source, registry = _source(url, repo)
        wall, cpu = await _timed(source, batch)
        cold_ms.append(wall)
        cold_cpu.append(cpu)
        cold_rows.append(_rows(registry, "item") + _rows(registry, "user"))
        await source.close()
    source, registry = _source(url, repo)
    started = time.perf_counter()
    await source.warm_up(data_items)
    warm_up_ms = (time.perf_counter() - started) * 1000
    before = _rows(registry, "item") + _rows(registry, "user")
    warm = [await _timed(source, b) for b in batches]
    warm_ms, warm_cpu = [w for w, _ in warm], [c for _, c in warm]
    warm_rows = (_rows(registry, "item") + _rows(registry, "user") - before) / len(batches)
    table = (await source.fetch(batches[0].user_ids, batches[0].candidates)).items
    users = (await source.fetch(batches[0].user_ids, batches[0].candidates)).users
    await source.close()
    scorer = Scorer()
    scorer.rank(model, batches[0], users, table)
    started = time.perf_counter()
    scorer.rank(model, batches[0], users, table)
    reused_ms = (time.perf_counter() - started) * 1000
    fresh = replace(table, token=table.token ^ 1)
    started = time.perf_counter()
    scorer.rank(model, batches[0], users, fresh)
    fresh_ms = (time.perf_counter() - started) * 1000
    unique = [int(np.unique(b.candidates).size) for b in batches]
    return {
        "items": args.items, "users": args.users, "jobs": args.jobs,
        "candidates_per_batch": int(statistics.median(b.candidates.size for b in batches)),
        "unique_items_per_batch": int(statistics.median(unique)),
        "cold_ms_median": statistics.median(cold_ms), "cold_ms_max": max(cold_ms),
        "cold_client_cpu_ms_median": statistics.median(cold_cpu),
        "cold_rows_per_batch": statistics.median(cold_rows),
        "warm_up_ms": warm_up_ms, "warm_up_rows": len(data_items),
        "warm_ms_median": statistics.median(warm_ms), "warm_ms_max": max(warm_ms),
        "warm_client_cpu_ms_median": statistics.median(warm_cpu),
        "warm_rows_per_batch": warm_rows,
        "kernel_ms_reused_table": reused_ms, "kernel_ms_fresh_table": fresh_ms,
        "table_rows": len(table),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=700)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        root = Path(tmp)
        data = write_demo_data(root, n_items=args.items, n_users=args.users, hash_bits=22)
        venv = feast_venv()
        repo = build_feature_repo(venv, root / "repo", data.users_file, data.items_file)
        with FeastServer(venv, repo, root / "feast-serve.log") as server:
            result = asyncio.run(_run(args, server.url, repo, data))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    width = max(map(len, result))
    for key, value in result.items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
