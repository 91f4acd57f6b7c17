"""`run --workers 2` with the ranking API on the real broker: a port per listener per worker, and
a worker that dies takes the group down with its exit code (the orchestrator restarts it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.local_kafka import create_topics, die_with_parent_prefix
from tests.consumer.kafka_support import wait_until
from tests.deploy.contract import ROOT

pytestmark = pytest.mark.kafka


def _free_pair() -> int:
    """A port p with p and p + 1 both free (bound and released)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two adjacent free ports")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_two_workers_with_the_api_and_a_dying_worker(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    data: DemoData = write_demo_data(tmp_path / "data", 300, 50, seed=5, hash_bits=12)
    jobs, ranked = unique_name("jobs"), unique_name("ranked")
    create_topics(kafka_bootstrap, [jobs, ranked], 2)
    server, api = _free_pair(), _free_pair()
    while abs(server - api) < 2:
        api = _free_pair()
    config = tmp_path / "scorer.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{kafka_bootstrap}"\ninput_topic = "{jobs}"\n'
        f'output_topic = "{ranked}"\ngroup_id = "{unique_name("group")}"\n'
        f'[models]\ndirectory = "{data.models_dir}"\nreload_interval_s = 0\n'
        f'[features]\nusers_file = "{data.users_file}"\nitems_file = "{data.items_file}"\n'
        f"[server]\nport = {server}\n[api]\nenabled = true\nport = {api}\n"
        "[delivery]\nshutdown_timeout_s = 5\n"
    )
    log = (tmp_path / "run.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_SCORER__")}
    proc = subprocess.Popen(
        [*die_with_parent_prefix(), sys.executable, "-m", "consumer.cli", "run", "--workers",
         "2", "--config", str(config)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for port in (server, server + 1):
            wait_until(lambda p=port: _answers(f"http://127.0.0.1:{p}/healthz"), 60)  # type: ignore[misc]
        for port in (api, api + 1):
            wait_until(lambda p=port: _answers(f"http://127.0.0.1:{p}/v1/rank"), 60)  # type: ignore[misc]
        assert proc.poll() is None, "both workers run: no 'address already in use'"
        workers = _children(proc.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        assert proc.wait(30) == 128 + signal.SIGKILL
        for pid in workers:  # the other worker was stopped too
            wait_until(lambda p=pid: not Path(f"/proc/{p}").exists()  # type: ignore[misc]
                       or "zombie" in Path(f"/proc/{p}/status").read_text(), 30)  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    text = (tmp_path / "run.log").read_text(errors="replace")
    assert "stopping the other workers" in text, text[-2000:]
    assert "address already in use" not in text.lower()
