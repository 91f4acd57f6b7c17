"""Ranking API benchmark: requests/s and latency under closed-loop load, per server CPU-second.

    python -m bench.http [--json] [--quick] [--concurrency N] [--duration S]
                         [--baseline REF] [--rounds N]

Writes the demo data (100k items, 2**22 weights) to a temp dir, starts the standalone API
(`consumer.api.server.serve`, what ``stream-scorer serve`` runs) in a separate process on
loopback, then drives it from this process with an aiohttp client holding ``concurrency``
connections, each sending the next request as soon as the previous answer arrives (closed loop).
Requests are JSON bodies of ~700 Zipf-popular candidates, top_k 50. After a warm-up, it measures for
``duration`` seconds (``--quick``: 5 s): requests/s, p50/p99 latency as the client sees it, and the
server process's CPU time (utime + stime of ``/proc/<pid>/stat``, all its threads), hence
predictions and requests per server CPU-second. The client shares the machine: its CPU time is
reported too.

``--baseline REF`` is the before/after comparison in one run: the API as committed at git ``REF``
(``git archive`` of its consumer, scoring, schemas and bench packages, unpacked to the temp dir)
serves the same data and config from a second process, and the two are measured alternately,
``--rounds`` times each (the order flips every round, so drifting load from other work on the
machine falls on both). The top-level keys describe this tree's server over all its rounds;
``baseline`` holds the same keys for ``REF``, and ``vs_baseline`` the ratios.

Reference point (the published Rust prediction service this project compares with): 936
requests/s, p99 65 ms at max load, ~674 candidates per request.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from consumer.clock import SystemClock
from consumer.devtools.demo_data import write_demo_data
from consumer.devtools.generator import JobShape, generate_jobs

SEED = {"requests_per_s": 936.0, "p99_ms": 65.0, "candidates_per_request": 674.0}
N_ITEMS = 100_000
N_USERS = 20_000
POOL = 512  # distinct request bodies, cycled
WARMUP_S = 2.0
REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("consumer", "scoring", "schemas", "bench")  # what a baseline server imports


@dataclass(frozen=True, slots=True)
class Load:
    latencies_s: list[float]
    errors: int
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float = 0.0

    def __add__(self, other: Load) -> Load:
        return Load(self.latencies_s + other.latencies_s, self.errors + other.errors,
                    self.wall_s + other.wall_s, self.client_cpu_s + other.client_cpu_s,
                    self.server_cpu_s + other.server_cpu_s)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Server:
    proc: subprocess.Popen[str]
    url: str


def server_cpu_s(pid: int) -> float:
    """utime + stime of process `pid` (every thread), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, field 3 onward
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_config(root: Path) -> Path:
    data = write_demo_data(root, n_items=N_ITEMS, n_users=N_USERS)
    path = root / "bench.toml"
    path.write_text(
        f'[models]\ndirectory = "{data.models_dir}"\nreload_interval_s = 0\n'
        f'[features]\nusers_file = "{data.users_file}"\nitems_file = "{data.items_file}"\n'
        '[api]\nhost = "127.0.0.1"\nport = 0\n',
        encoding="utf-8",
    )
    return path


def request_bodies(root: Path) -> tuple[list[bytes], float]:
    """JSON bodies of generated jobs, and their mean candidate count."""
    from consumer.features.files import read_entity_csv

    users = read_entity_csv(root / "features" / "users.csv").ids
    items = read_entity_csv(root / "features" / "items.csv").ids
    rng = np.random.default_rng(11)
    jobs = list(generate_jobs(rng, users, items, POOL, JobShape(), SystemClock()))
    bodies = [
        json.dumps({"user_id": j.user_id, "model": j.model, "context": j.context,
                    "candidates": np.asarray(j.candidates).tolist(), "top_k": j.top_k}).encode()
        for j in jobs
    ]  # fmt: skip
    return bodies, float(np.mean([np.asarray(j.candidates).size for j in jobs]))


def checkout(ref: str, dest: Path) -> Path:
    """The packages as committed at `ref`, unpacked under `dest` (a tree to run a server from)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, *PACKAGES],
                             check=True, capture_output=True).stdout  # fmt: skip
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def start_server(config: Path, tree: Path = REPO) -> Server:
    """The standalone API of the packages under `tree`, serving `config`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http", "--serve", str(config)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tree,  # `-m` puts the working directory first on sys.path: `tree`'s packages run
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "PORT <n>" once serving
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"API server did not start (said {line!r})")
    return Server(proc, f"http://127.0.0.1:{int(line.split()[1])}/v1/rank")


def stop_server(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> Load:
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        end = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                    await r.read()
                    ok = r.status == 200
                latencies.append(time.perf_counter() - t0)
                errors += 0 if ok else 1
                i += concurrency

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Load(latencies, errors, wall, cpu)


def load_once(server: Server, bodies: list[bytes], concurrency: int, seconds: float) -> Load:
    """Warm up, then one measured closed-loop run with the server's CPU time."""
    asyncio.run(closed_loop(server.url, bodies, concurrency, WARMUP_S))
    cpu0 = server_cpu_s(server.proc.pid)
    load = asyncio.run(closed_loop(server.url, bodies, concurrency, seconds))
    cpu = server_cpu_s(server.proc.pid) - cpu0
    return Load(load.latencies_s, load.errors, load.wall_s, load.client_cpu_s, cpu)


def measure(
    concurrency: int, seconds: float, baseline: str | None = None, rounds: int = 1
) -> dict[str, Any]:
    """This tree's server (and `baseline`'s, alternately), `rounds` measured runs each."""
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        root = Path(tmp)
        config = write_config(root)
        bodies, mean_candidates = request_bodies(root)
        servers: dict[str, Server] = {}
        try:
            servers["current"] = start_server(config)
            if baseline is not None:
                servers["baseline"] = start_server(config, checkout(baseline, root / "baseline"))
            loads: dict[str, list[Load]] = {name: [] for name in servers}
            for r in range(rounds):
                for name in list(servers)[:: 1 if r % 2 == 0 else -1]:
                    loads[name].append(load_once(servers[name], bodies, concurrency, seconds))
        finally:
            for server in servers.values():
                stop_server(server)
    total = {name: sum(runs[1:], runs[0]) for name, runs in loads.items()}
    result = summarize(total["current"], concurrency, mean_candidates)
    result["rounds"] = rounds
    if baseline is not None:
        before = summarize(total["baseline"], concurrency, mean_candidates)
        result["baseline"] = {"ref": baseline, **{k: before[k] for k in COMPARED}}
        result["vs_baseline"] = {k: round(result[k] / before[k], 2) if before[k] else None
                                 for k in COMPARED}  # fmt: skip
    return result


COMPARED = ("requests_per_s", "p50_ms", "p99_ms", "predictions_per_s", "server_cpu_s",
            "requests_per_cpu_s", "predictions_per_cpu_s", "errors")  # fmt: skip


def summarize(load: Load, concurrency: int, candidates: float) -> dict[str, Any]:
    cpu_s = load.server_cpu_s
    n = len(load.latencies_s)
    ms = np.array(load.latencies_s) * 1000
    ok = n - load.errors
    return {
        "requests": n,
        "errors": load.errors,
        "requests_per_s": round(ok / load.wall_s, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "candidates_per_request": round(candidates, 1),
        "predictions_per_s": round(ok * candidates / load.wall_s),
        "server_cpu_s": round(cpu_s, 2),
        "requests_per_cpu_s": round(ok / cpu_s, 1),
        "predictions_per_cpu_s": round(ok * candidates / cpu_s),
        "client_cpu_s": round(load.client_cpu_s, 2),
        "concurrency": concurrency,
        "duration_s": round(load.wall_s, 2),
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews wall time
        "seed": SEED,
    }


def report(r: dict[str, Any]) -> str:
    seed = r["seed"]
    lines = [
        f"ranking API, {r['concurrency']} connections, {r['duration_s']} s, "
        f"{r['candidates_per_request']} candidates/request, {r['cpus']} CPUs (client included)",
        f"  requests/s        {r['requests_per_s']:>10}   (seed: {seed['requests_per_s']:.0f})",
        f"  p50 / p99 ms      {r['p50_ms']:>5} / {r['p99_ms']:<5}(seed p99: {seed['p99_ms']:.0f})",
        f"  predictions/s     {r['predictions_per_s']:>10}",
        f"  server CPU s      {r['server_cpu_s']:>10}   (client CPU s: {r['client_cpu_s']})",
        f"  requests/CPU-s    {r['requests_per_cpu_s']:>10}",
        f"  predictions/CPU-s {r['predictions_per_cpu_s']:>10}",
        f"  errors            {r['errors']:>10}   (load average: {r['loadavg_1m']})",
    ]  # fmt: skip
    if "baseline" in r:
        base, ratio = r["baseline"], r["vs_baseline"]
        lines.append(f"baseline {base['ref']} (same load, {r['rounds']} alternating round(s)):")
        lines.extend(f"  {k:<22}{base[k]:>12}   this tree / baseline: {ratio[k]}"
                     for k in COMPARED)  # fmt: skip
    return "\n".join(lines)


def run_server(config_path: str) -> None:
    """The child process: the standalone API until SIGTERM; prints its port once serving."""
    from consumer.api.server import serve
    from consumer.config import load_config, read_config_file

    text, base = read_config_file(Path(config_path))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    parent = os.getppid()

    def orphaned() -> None:  # the bench died without stopping us: stop anyway
        while not stop.wait(0.5):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=orphaned, daemon=True).start()

    def started(port: int) -> None:
        print(f"PORT {port}", flush=True)

    serve(load_config({}, text, base), stop, on_started=started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="measure 5 s instead of 20 s")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds")
    parser.add_argument(
        "--baseline", metavar="REF", help="also measure the API as committed at git REF"
    )
    parser.add_argument("--rounds", type=int, default=1, help="measured runs per server")
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        run_server(args.serve)
        return
    seconds = args.duration or (5.0 if args.quick else 20.0)
    results = measure(args.concurrency, seconds, args.baseline, max(1, args.rounds))
    print(json.dumps(results) if args.json else report(results))


if __name__ == "__main__":
    main()
