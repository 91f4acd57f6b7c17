"""Serde cost per job: fastavro versus the vectorized fast path (CPU time, microseconds).

Run ``python -m bench.serde [--json] [--jobs N] [--candidates N] [--repeat N]``. Decoding uses
framed ScoringJob messages of ~``candidates`` ids each; encoding uses top-50 RankedList rows.
The fastavro baseline does what a plain consumer would: one ``schemaless_reader`` /
``schemaless_writer`` call per message with the same schemas. Outputs are checked to be equal
before timing, so the two sides do the same work.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from fastavro import schemaless_reader, schemaless_writer

from schemas import JobDecoder, JobEncoder, RankedListEncoder, ScoringJob, StaticRegistry
from schemas.framing import HEADER_SIZE, frame_header
from schemas.parsed import bundled

TOP_K = 50


def make_jobs(n: int, candidates: int, seed: int = 0) -> list[ScoringJob]:
    """``n`` jobs with 90-110% of ``candidates`` item ids from a 10 M catalogue."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(int(candidates * 0.9), int(candidates * 1.1) + 1, n)
    return [
        ScoringJob(
            request_id=f"req-{i:08d}",
            user_id=int(rng.integers(1, 50_000_000)),
            model="ctr-lr",
            created_at_ms=1_790_000_000_000 + i,
            context={"device": "android", "locale": "de-DE", "page": "home"},
            candidates=rng.integers(0, 10_000_000, int(size)),
            top_k=TOP_K,
        )
        for i, size in enumerate(sizes)
    ]


def cpu_us_per_job(run: Callable[[], object], jobs: int, repeat: int) -> float:
    """Best-of-``repeat`` CPU time of one ``run()``, per job, in microseconds."""
    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best * 1e6 / jobs


def bench_decode(payloads: list[bytes], repeat: int) -> dict[str, float]:
    schema = bundled("ScoringJob").plain
    decoder = JobDecoder(StaticRegistry())

    def fastavro_decode() -> list[Any]:
        out = []
        for payload in payloads:
            body = io.BytesIO(payload)
            body.seek(HEADER_SIZE)
            record = schemaless_reader(body, schema, schema)
            assert isinstance(record, dict)
            record["candidates"] = np.asarray(record["candidates"], np.int64)
            out.append(record)
        return out

    reference = fastavro_decode()
    decoded = decoder.decode_batch(payloads)
    assert not decoded.errors
    assert all(
        np.array_equal(rec["candidates"], decoded.jobs.candidates_of(i))
        for i, rec in enumerate(reference)
    )
    n = len(payloads)
    return {
        "fastavro": cpu_us_per_job(fastavro_decode, n, repeat),
        "fast_path": cpu_us_per_job(lambda: decoder.decode_batch(payloads), n, repeat),
    }


def bench_encode(n: int, repeat: int, seed: int = 1) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    item_ids = rng.integers(0, 10_000_000, (n, TOP_K))
    scores = rng.random((n, TOP_K), dtype=np.float32)
    counts = np.full(n, TOP_K, np.int32)
    request_ids = [f"req-{i:08d}" for i in range(n)]
    user_ids = rng.integers(1, 50_000_000, n)
    created = np.full(n, 1_790_000_000_000, np.int64)
    args = (request_ids, user_ids, ["ctr-lr"] * n, ["ctr-lr@42"] * n)
    encoder = RankedListEncoder(StaticRegistry())
    schema, header = bundled("RankedList").plain, frame_header(2)

    def fastavro_encode() -> list[bytes]:
        out = []
        for i in range(n):
            record = {
                "request_id": request_ids[i],
                "user_id": int(user_ids[i]),
                "model": "ctr-lr",
                "model_version": "ctr-lr@42",
                "items": [
                    {"item_id": a, "score": s}
                    for a, s in zip(item_ids[i].tolist(), scores[i].tolist(), strict=True)
                ],
                "created_at": int(created[i]),
                "scored_at": 1_790_000_000_100,
                "degraded": False,
            }
            buf = io.BytesIO()
            buf.write(header)
            schemaless_writer(buf, schema, record)
            out.append(buf.getvalue())
        return out

    def fast_encode() -> list[bytes]:
        return encoder.encode_batch(*args, item_ids, scores, counts, created, 1_790_000_000_100)

    assert fastavro_encode() == fast_encode()
    return {
        "fastavro": cpu_us_per_job(fastavro_encode, n, repeat),
        "fast_path": cpu_us_per_job(fast_encode, n, repeat),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--jobs", type=int, default=512)
    parser.add_argument("--candidates", type=int, default=700)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    encoder = JobEncoder(StaticRegistry())
    payloads = [encoder.encode(job) for job in make_jobs(args.jobs, args.candidates)]
    results = {
        "jobs": args.jobs,
        "candidates_per_job": args.candidates,
        "decode_us_per_job": bench_decode(payloads, args.repeat),
        "encode_top50_us_per_job": bench_encode(args.jobs, args.repeat),
    }
    for key in ("decode_us_per_job", "encode_top50_us_per_job"):
        side = results[key]
        assert isinstance(side, dict)
        side["ratio"] = side["fastavro"] / side["fast_path"]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.jobs} jobs, ~{args.candidates} candidates each (CPU us per job, best of runs)")
    for key in ("decode_us_per_job", "encode_top50_us_per_job"):
        side = results[key]
        assert isinstance(side, dict)
        print(
            f"  {key:24s} fastavro {side['fastavro']:8.1f}   fast path {side['fast_path']:7.1f}"
            f"   ratio {side['ratio']:5.1f}x"
        )


if __name__ == "__main__":
    main()
