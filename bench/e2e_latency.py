"""The latency phase of the end-to-end benchmark: open-loop load at fractions of the maximum rate.

One scorer subprocess serves every load level in turn. For each level a separate generator
process produces ``rate * seconds`` jobs at a fixed rate, each stamped ``created_at`` when sent;
the benchmark's reader consumes the output topic and stamps each ranked list on arrival. After
the level's last list arrived (bounded), the next level starts, so levels never overlap in time
and each list belongs to the level whose window holds its ``created_at``.

Per level: ``scored_at - created_at`` (decoded from the ranked list, what the scorer's
``stream_scorer_e2e_latency_seconds`` measures) and ``arrival - created_at`` (the time until a
downstream reader holds the list), p50/p95/p99 after dropping the first ``warmup_s`` of the level
(generator start-up), the achieved output rate and the scorer's predictions per CPU-second.
``list_readable_ms`` is the output leg alone: from the scorer's ``produce`` call (the record's
CreateTime) until the reader holds the list (the scorer's producer, the broker, the reader).
``scorer_added_ms`` is what the scorer adds: ``scored_at`` minus the input record's broker time
stamp (the input topic uses LogAppendTime, and a second reader keeps each job's request id and
time stamp), so the generator's linger and the produce path before the broker do not count.
Per level, the CPU seconds of the scorer, the generator, the broker (when local) and this process
(the reader) show where the two cores went.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.e2e_kafka import BenchError, GroupWatch, TopicReader
from bench.e2e_procs import Child, broker_cpu_s, machine_busy_s, start_baseline
from schemas.errors import SchemaError
from schemas.framing import HEADER_SIZE
from schemas.primitives import read_string
from schemas.registry import StaticRegistry
from schemas.serde import RankedListDecoder


@dataclass(frozen=True, slots=True)
class LatencyPlan:
    bootstrap: str
    topic: str
    output_topic: str
    data_root: Path
    max_rate: float
    loads: Sequence[float]
    seconds: float
    warmup_s: float
    generator_linger_ms: int
    log_dir: Path
    workload: str = "standard"


@dataclass(frozen=True, slots=True)
class _Window:
    load: float
    rate: float
    start_ms: float
    end_ms: float
    sent: int
    predictions: int
    scorer_cpu_s: float
    other_cpu_s: dict[str, float]
    complete: bool


def run_levels(
    plan: LatencyPlan, scorer: Child, group: str, watch: GroupWatch
) -> list[dict[str, Any]]:
    """Drive every load level through the running ``scorer``; one summary per level."""
    # The reader thread stamps each list's arrival: a full collection over this process's heap
    # (~25 ms) would delay stamps, so what exists now is exempted from collection.
    gc.collect()
    gc.freeze()
    outputs = TopicReader(plan.bootstrap, plan.output_topic, f"{group}-reader", keep_values=True)
    inputs = TopicReader(plan.bootstrap, plan.topic, f"{group}-input-reader", True, _request_id)
    try:
        watch.wait_assigned(group, scorer, 120)
        outputs.wait_ready(60)
        inputs.wait_ready(60)
        windows, total = [], 0
        for load in plan.loads:
            window = _level(plan, load, scorer, outputs, total)
            total += window.sent
            windows.append(window)
    finally:
        lists = outputs.close()
        jobs = inputs.close()
    stamps = _stamps(lists, jobs)
    return [_summary(w, stamps, plan.warmup_s) for w in windows]


def _level(
    plan: LatencyPlan, load: float, scorer: Child, reader: TopicReader, before: int
) -> _Window:
    rate = load * plan.max_rate
    n = max(1, int(rate * plan.seconds))
    cpu0, start, broker0 = scorer.cpu_s(), time.time() * 1000.0, broker_cpu_s()
    bench0, busy0 = time.process_time(), machine_busy_s()
    gen = start_baseline(
        "generate",
        {
            "bootstrap": plan.bootstrap,
            "topic": plan.topic,
            "data": str(plan.data_root),
            "rate": rate,
            "jobs": n,
            "linger_ms": plan.generator_linger_ms,
            "seed": int(load * 1000),
            "workload": plan.workload,
        },
        plan.log_dir / f"generate-{int(load * 100)}.log",
    )
    try:
        if gen.wait(plan.seconds + 120) != 0:
            raise BenchError(f"the generator failed\n{gen.log_tail()}")
    finally:
        gen.stop()
    info = json.loads(gen.log_tail(1))
    complete = reader.wait_count(before + int(info["sent"]), 60)
    cpu = scorer.cpu_s() - cpu0
    other = {
        "generator": info["cpu_s"],
        "benchmark": time.process_time() - bench0,
        "machine_busy": machine_busy_s() - busy0,
    }
    if broker0 is not None:
        other["broker"] = (broker_cpu_s() or 0.0) - broker0
    end = time.time() * 1000.0
    return _Window(load, rate, start, end, info["sent"], info["predictions"], cpu, other, complete)


@dataclass(frozen=True, slots=True)
class _Stamps:
    """Epoch-ms time stamps: per ranked list, and per job as the input reader saw it."""

    created: NDArray[np.float64]  # ranked list's created_at (the generator's send time)
    scored: NDArray[np.float64]  # ranked list's scored_at
    produced: NDArray[np.float64]  # the output record's CreateTime (the scorer's produce call)
    arrived: NDArray[np.float64]  # when the benchmark's reader got the list
    appended: NDArray[np.float64]  # the input job's broker time stamp (LogAppendTime); NaN: unseen


def _request_id(value: bytes) -> bytes:
    """The request id of a framed ScoringJob (its first field) as UTF-8, b"" if unreadable."""
    try:
        return read_string(value, HEADER_SIZE)[0].encode()
    except SchemaError:
        return b""


def _stamps(
    lists: Sequence[tuple[float, int, bytes]], jobs: Sequence[tuple[float, int, bytes]] = ()
) -> _Stamps:
    decoder = RankedListDecoder(StaticRegistry())
    ranked = [decoder.decode(value) for _, _, value in lists]
    appended = {request_id.decode(): float(ts) for _, ts, request_id in jobs}

    def f64(values: Sequence[float]) -> NDArray[np.float64]:
        return np.array(values, np.float64)

    return _Stamps(
        created=f64([r.created_at_ms for r in ranked]),
        scored=f64([r.scored_at_ms for r in ranked]),
        produced=f64([ts for _, ts, _ in lists]),
        arrived=f64([arrival for arrival, _, _ in lists]),
        appended=f64([appended.get(r.request_id, np.nan) for r in ranked]),
    )


def _pcts(values: NDArray[np.float64]) -> dict[str, float]:
    if values.size == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    p = np.percentile(values, [50, 95, 99])
    return {
        "p50": round(float(p[0]), 2),
        "p95": round(float(p[1]), 2),
        "p99": round(float(p[2]), 2),
    }


def _seen(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Values of the jobs whose input record the reader saw (the others are NaN)."""
    return values[np.isfinite(values)]


def _rate(n: int, stamps_ms: NDArray[np.float64]) -> float:
    """``n`` events over the span of their time stamps, per second."""
    span_s = float(stamps_ms.max() - stamps_ms.min()) / 1000.0 if n > 1 else 0.0
    return round(n / span_s, 1) if span_s > 0 else 0.0


def _in_window(
    stamps: NDArray[np.float64], w: _Window, warmup_s: float
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Records of the level, and those past its warm-up."""
    mine = (stamps >= w.start_ms) & (stamps <= w.end_ms)
    first = float(stamps[mine].min()) if mine.any() else w.start_ms
    return mine, mine & (stamps >= first + warmup_s * 1000.0)


def _summary(w: _Window, s: _Stamps, warmup_s: float) -> dict[str, Any]:
    mine, kept = _in_window(s.created, w, warmup_s)
    n = int(mine.sum())
    return {
        "load": w.load,
        "offered_jobs_per_s": round(w.rate, 1),
        "jobs_sent": w.sent,
        "ranked_lists_read": n,
        "complete": w.complete,
        "sent_jobs_per_s": _rate(n, s.created[mine]),
        "achieved_jobs_per_s": _rate(n, s.arrived[mine]),
        "measured_lists": int(kept.sum()),
        "scored_ms": _pcts(s.scored[kept] - s.created[kept]),
        "readable_ms": _pcts(s.arrived[kept] - s.created[kept]),
        "list_readable_ms": _pcts(s.arrived[kept] - s.produced[kept]),
        "scorer_added_ms": _pcts(_seen(s.scored[kept] - s.appended[kept])),
        "input_leg_ms": _pcts(_seen(s.appended[kept] - s.created[kept])),
        "window_s": round((w.end_ms - w.start_ms) / 1000.0, 2),
        "scorer_cpu_s": round(w.scorer_cpu_s, 2),
        **{f"{k}_cpu_s": round(v, 2) for k, v in w.other_cpu_s.items()},
        "scorer_predictions_per_cpu_s": round(w.predictions / w.scorer_cpu_s)
        if w.scorer_cpu_s > 0
        else 0,
    }
