"""Tracing overhead, end to end: the scorer with OpenTelemetry spans on vs off on the real broker.

    python -m bench.e2e_tracing [--json] [--quick] [--sampled-share 0.05]

Part of ``python -m bench.e2e`` (``tracing_overhead_share``) and runnable alone. A backlog whose
every job carries a W3C ``traceparent`` (a traced upstream producer; ``--sampled-share`` of them
sampled, by default the scorer's default ``tracing.sample_ratio``) is drained by one scorer,
alternately with spans off and on, the spans exported over OTLP/HTTP to a sink in this process
(aiohttp on 127.0.0.1: its CPU is not the scorer's). Trace-context propagation is on in both
runs: it is the default, not the option measured.

``tracing_overhead_share`` = median over rounds of (scorer CPU per job with spans / without) - 1,
CPU being utime + stime of the scorer process from its first assignment to its last commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from aiohttp import web

from bench.e2e_kafka import prefill
from bench.e2e_report import Drain
from consumer.config import TracingConfig
from consumer.devtools.local_kafka import create_topics

if TYPE_CHECKING:
    from bench.e2e import Bench

DEFAULT_SAMPLED_SHARE = TracingConfig().sample_ratio


class OtlpSink:
    """Accepts OTLP/HTTP trace exports and counts them (no decoding: the benchmark's own CPU)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    async def traces(self, request: web.Request) -> web.Response:
        self.bytes += len(await request.read())
        self.requests += 1
        return web.Response(body=b"", content_type="application/x-protobuf")


@contextmanager
def otlp_sink() -> Iterator[OtlpSink]:
    sink, loop = OtlpSink(), asyncio.new_event_loop()
    app = web.Application(client_max_size=256 * 2**20)
    app.router.add_post("/v1/traces", sink.traces)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        sink.port = runner.addresses[0][1]

    thread = threading.Thread(target=loop.run_forever, daemon=True, name="otlp-sink")
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield sink
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _cpu_us_per_job(drain: Drain) -> float:
    return drain.cpu_s / drain.jobs * 1e6


def tracing_phase(
    bench: Bench, jobs: int, rounds: int, sampled_share: float = DEFAULT_SAMPLED_SHARE
) -> dict[str, Any]:
    """Drain a traced backlog ``rounds`` times each with spans off and on; the overhead."""
    from bench.e2e import PARTITIONS, _say

    topic = f"{bench.group_prefix}-traced"
    create_topics(bench.bootstrap, [topic], PARTITIONS)
    ids = (np.load(bench.data_root / "user_ids.npy"), np.load(bench.data_root / "item_ids.npy"))
    _say(f"tracing: pre-filling {jobs:,} traced jobs ({sampled_share:.0%} sampled) into {topic}")
    backlog = prefill(bench.bootstrap, topic, ids, jobs, sampled_share, bench.data.shape)
    saved_backlog, saved_jobs = bench.backlog, bench.topics["jobs"]
    bench.backlog, bench.topics["jobs"] = backlog, topic
    off: list[Drain] = []
    on: list[Drain] = []
    try:
        with otlp_sink() as sink:
            for r in range(rounds):  # the order alternates: neither side always runs first
                for spans in (False, True) if r % 2 == 0 else (True, False):
                    if spans:
                        on.append(bench.scorer(f"trace-on-{r}", 1, backlog.jobs,
                                               tracing__spans="true",
                                               tracing__endpoint=sink.endpoint))  # fmt: skip
                    else:
                        off.append(bench.scorer(f"trace-off-{r}", 1, backlog.jobs))
    finally:
        bench.backlog, bench.topics["jobs"] = saved_backlog, saved_jobs
        bench.watch.delete_topics([topic])
    ratios = [_cpu_us_per_job(b) / _cpu_us_per_job(a) for a, b in zip(off, on, strict=True)]
    return {
        "tracing_overhead_share": round(statistics.median(ratios) - 1, 4),
        "tracing": {
            "jobs": backlog.jobs,
            "rounds": rounds,
            "sampled_share": sampled_share,
            "sample_ratio": DEFAULT_SAMPLED_SHARE,
            "overhead_by_round": [round(r - 1, 4) for r in ratios],
            "cpu_us_per_job_off": [round(_cpu_us_per_job(d), 2) for d in off],
            "cpu_us_per_job_on": [round(_cpu_us_per_job(d), 2) for d in on],
            "export_requests": sink.requests,
            "export_bytes": sink.bytes,
            "drains": [asdict(d) for d in [*off, *on]],
        },
    }


def report(r: dict[str, Any]) -> str:
    t = r["tracing"]
    return "\n".join([
        f"tracing overhead, {t['jobs']:,} jobs x {t['rounds']} rounds, every job traced, "
        f"{t['sampled_share']:.0%} sampled upstream, sample_ratio {t['sample_ratio']}",
        f"  scorer CPU per job, spans off: {t['cpu_us_per_job_off']} us",
        f"  scorer CPU per job, spans on:  {t['cpu_us_per_job_on']} us",
        f"  tracing_overhead_share {r['tracing_overhead_share']:+.2%} (median; by round "
        f"{', '.join(f'{x:+.2%}' for x in t['overhead_by_round'])}); "
        f"{t['export_requests']} OTLP exports, {t['export_bytes'] / 1e6:.1f} MB",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from bench.e2e import Bench, options_for
    from bench.workloads import write_workload
    from consumer.devtools.local_kafka import default_cache_dir, kafka_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="5,000 jobs, 2 rounds")
    parser.add_argument("--sampled-share", type=float, default=DEFAULT_SAMPLED_SHARE)
    args = parser.parse_args(argv)
    jobs, rounds = (5_000, 2) if args.quick else (20_000, 3)
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        root = Path(tmp)
        data = write_workload("standard", root)
        np.save(root / "user_ids.npy", data.user_ids)
        np.save(root / "item_ids.npy", data.item_ids)
        options = replace(options_for(args.quick, 10, 1, 5), backlog_jobs=1)
        with kafka_cluster(default_cache_dir(os.environ), os.environ.get("KAFKA_BOOTSTRAP")) as b:
            bench = Bench(b, data, options)
            try:
                results = tracing_phase(bench, jobs, rounds, args.sampled_share)
            finally:
                bench.close()
    if args.json:
        print(json.dumps(results))
    else:
        print(report(results))


if __name__ == "__main__":
    main()
