"""The end-to-end benchmark's figure: throughput and latency against offered load (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt


def plot(results: dict[str, Any], path: Path) -> Path:
    """Left: achieved vs offered jobs/s with the backlog rates; right: latency percentiles."""
    levels = results["latency"]
    offered = [lv["offered_jobs_per_s"] for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.plot(offered, [lv["achieved_jobs_per_s"] for lv in levels], "o-", label="achieved")
    top = max([*offered, results["scorer_jobs_per_s"]]) * 1.1
    left.plot([0, top], [0, top], ":", color="grey", label="offered = achieved")
    left.axhline(results["scorer_jobs_per_s"], color="C1", ls="--", label="scorer, backlog")
    left.axhline(results["passthrough_jobs_per_s"], color="C2", ls="--", label="passthrough")
    left.set(xlabel="offered load (jobs/s)", ylabel="jobs/s", title="Throughput")
    left.legend(fontsize=8)
    for key, style in (("readable_ms", "-"), ("scored_ms", "--")):
        for q, color in (("p50", "C0"), ("p95", "C1"), ("p99", "C3")):
            label = f"{q} {'until readable' if key == 'readable_ms' else 'scored_at'}"
            right.plot(offered, [lv[key][q] for lv in levels], style, marker="o",
                       color=color, label=label)  # fmt: skip
    right.set(xlabel="offered load (jobs/s)", ylabel="ms after created_at", title="Latency")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    cfg = results["config"]
    fig.suptitle(
        f"stream-scorer end to end: {cfg['backlog_jobs']:,} jobs x ~{cfg['mean_candidates']:.0f} "
        f"candidates, {cfg['cpus']} CPUs shared with the broker; latency with "
        f"batch.max_wait_ms={cfg['latency_max_wait_ms']}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
