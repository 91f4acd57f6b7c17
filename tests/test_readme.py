"""The README's "Running the service" commands work as written, from a fresh directory.

The block between ``<!-- readme-commands -->`` and ``<!-- /readme-commands -->`` is run line by
line in a temporary directory holding only ``deploy/local.toml`` (what a clone has that the
commands read), with four substitutions a test needs: ``stream-scorer`` and ``python`` become this
interpreter running this checkout; the broker address ``127.0.0.1:9092`` becomes the session's
broker (which stands in for ``python -m consumer.local_kafka run``); the topic and group names
become unique ones; the listening ports become free ones (``STREAM_SCORER__*__PORT``). Commands
that serve until stopped are stopped the way the README says (Ctrl-C) once they did their job.
A README line no handler knows fails the test: the block cannot grow untested.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.contract import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- readme-commands -->\n```bash\n(.*?)```\n<!-- /readme-commands -->", re.S)
RANK_BODY = '{"user_id": 1, "model": "demo-lr", "candidates": [1, 2, 3], "top_k": 2}'


def readme_commands() -> list[str]:
    match = BLOCK.search(README.read_text(encoding="utf-8"))
    assert match, "README lacks the readme-commands block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def free_port(pair: bool = False) -> int:
    """A free port (with ``pair``, one whose successor is free too)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if not pair:
                return port
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise AssertionError("no free ports")


def get(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def eventually(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s:.0f} s: {what}")
        time.sleep(0.2)


@dataclass
class Clone:
    """A directory holding what a clone's commands read, and the environment to run them in."""

    root: Path
    bootstrap: str
    names: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    server_port: int = 0
    api_port: int = 0

    def command(self, line: str) -> list[str]:
        for old, new in {"127.0.0.1:9092": self.bootstrap, **self.names}.items():
            line = line.replace(old, new)
        argv = shlex.split(line)
        if argv[0] == "stream-scorer":
            return [sys.executable, "-m", "consumer.cli", *argv[1:]]
        if argv[0] == "python":
            return [sys.executable, *argv[1:]]
        return argv

    def run(self, line: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(line), cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done

    def start(self, line: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(line), cwd=self.root, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip


def interrupt(proc: subprocess.Popen[str], line: str) -> None:
    """Ctrl-C, as the README says; the command must exit 0 within its shutdown bound."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"{line} did not stop on Ctrl-C:\n{out[-3000:]}") from None
    assert proc.returncode == 0, f"{line} exited {proc.returncode}:\n{out[-3000:]}"


def metric(port: int, name: str) -> float:
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return -1.0
    values = [float(line.split()[-1]) for line in body.splitlines() if line.startswith(name)]
    return sum(values) if values else 0.0


@pytest.fixture
def clone(tmp_path: Path, kafka_bootstrap: str) -> Clone:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "local.toml").write_bytes((ROOT / "deploy" / "local.toml").read_bytes())
    tag = os.urandom(4).hex()
    names = {"scoring-jobs": f"readme-jobs-{tag}", "ranked-lists": f"readme-ranked-{tag}"}
    made = Clone(tmp_path, kafka_bootstrap, names)
    made.server_port, made.api_port = free_port(pair=True), free_port()
    made.env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_SCORER__")}
    made.env.update({
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAM_SCORER__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAM_SCORER__KAFKA__INPUT_TOPIC": names["scoring-jobs"],
        "STREAM_SCORER__KAFKA__OUTPUT_TOPIC": names["ranked-lists"],
        "STREAM_SCORER__KAFKA__GROUP_ID": f"readme-group-{tag}",
        "STREAM_SCORER__SERVER__PORT": str(made.server_port),
        "STREAM_SCORER__API__PORT": str(made.api_port),
        "STREAM_SCORER_CACHE": str(tmp_path / "cache"),  # `demo` starts afresh in <cache>/demo
    })  # fmt: skip
    return made


def _setup(clone: Clone, line: str) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nsetup:", 1)[1]
    assert "broker-jars" in recipe.splitlines()[0]
    assert "$(BIN)/python -m consumer.demo_data demo-data" in recipe
    clone.run("python -m consumer.demo_data demo-data")  # what the target adds to make test's
    assert (clone.root / "demo-data" / "models" / "demo-lr" / "manifest.json").is_file()


def _activate(clone: Clone, line: str) -> None:
    assert line == "source .venv/bin/activate"  # the test's interpreter is the venv's


def _broker(clone: Clone, line: str) -> None:
    assert line.endswith(" &")  # the session broker stands in; the command itself must parse
    clone.run(line.removesuffix(" &").replace(" --port 9092", "") + " --help")


def _topics(clone: Clone, line: str) -> None:
    assert "topics ready" in clone.run(line).stdout


def _produce(clone: Clone, line: str) -> None:
    assert "produced 2000 jobs" in clone.run(line).stdout


def _run(clone: Clone, line: str) -> None:
    proc = clone.start(line)
    try:
        if "--workers 2" in line:
            for port in (clone.server_port, clone.server_port + 1):
                eventually(lambda p=port: get(f"http://127.0.0.1:{p}/readyz")[0] == 200,  # type: ignore[misc]
                           90, f"worker on {port} ready")  # fmt: skip
        else:
            done = "stream_scorer_ranked_lists_produced_total"
            eventually(lambda: metric(clone.server_port, done) >= 2000, 120, "2000 lists ranked")
            assert get(f"http://127.0.0.1:{clone.server_port}/readyz")[0] == 200
    finally:
        interrupt(proc, line)


def _serve(clone: Clone, line: str) -> None:
    assert RANK_BODY in README.read_text(encoding="utf-8")  # the README's curl example
    proc = clone.start(line)
    try:
        url = f"http://127.0.0.1:{clone.api_port}"
        eventually(lambda: get(f"{url}/readyz")[0] == 200, 60, "serve ready")
        request = urllib.request.Request(
            f"{url}/v1/rank", RANK_BODY.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert [i["item_id"] for i in answer["items"]] != []
        assert len(answer["items"]) == 2
        assert answer["model_version"] == "v1"
    finally:
        interrupt(proc, line)


def _impressions(clone: Clone, line: str) -> None:
    clone.run(line)
    assert (clone.root / "demo-data" / "training" / "impressions.csv").is_file()


def _train(clone: Clone, line: str) -> None:
    clone.run(line)
    assert (clone.root / "demo-data" / "models" / "ctr" / "manifest.json").is_file()


HANDLERS: list[tuple[str, Callable[[Clone, str], None]]] = [
    ("make setup", _setup),
    ("source ", _activate),
    ("python -m consumer.local_kafka run", _broker),
    ("python -m consumer.devtools.kafka_topics", _topics),
    ("stream-scorer produce", _produce),
    ("stream-scorer run", _run),
    ("stream-scorer serve", _serve),
    ("python -m consumer.devtools.train --make-impressions", _impressions),
    ("stream-scorer train", _train),
    ("stream-scorer demo", lambda _c, _l: None),  # test_readme_demo_command runs it
]


def handler(line: str) -> Callable[[Clone, str], None]:
    found = [h for prefix, h in HANDLERS if line.startswith(prefix)]
    assert found, f"README command without a test: {line!r}"
    return found[0]


def test_every_readme_command_has_a_handler() -> None:
    lines = readme_commands()
    assert len(lines) >= 10
    for line in lines:
        handler(line)


@pytest.mark.kafka
@pytest.mark.slow
def test_readme_commands_work_as_written(clone: Clone) -> None:
    for line in readme_commands():
        handler(line)(clone, line)


@pytest.mark.kafka
@pytest.mark.slow
def test_readme_demo_command(clone: Clone) -> None:
    (line,) = [c for c in readme_commands() if c.startswith("stream-scorer demo")]
    out = clone.run(line, timeout_s=600).stdout  # exit 0: every ranked list was read back
    read_back = re.search(r"ranked lists read back\s+([\d,]+) of ([\d,]+)", out)
    assert read_back, out[-3000:]
    assert read_back.group(1) == read_back.group(2)
    assert int(read_back.group(2).replace(",", "")) >= 2000


def _docs() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in (README, ROOT / "deploy" / "README.md")
    )


def test_every_make_target_the_docs_name_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", _docs()))
    assert named >= {"setup", "demo", "test", "check"}
    assert named <= targets, sorted(named - targets)


def test_every_python_module_the_docs_run_exists_and_parses_help() -> None:
    modules = set(re.findall(r"python -m ([a-z_][a-z0-9_.]*[a-z0-9_])", _docs()))
    assert {"consumer.demo_data", "consumer.local_kafka", "bench.kernel"} <= modules
    for module in sorted(modules):
        if module.startswith("bench.") or module == "consumer.devtools.train":
            assert importlib.util.find_spec(module) is not None, module  # runs benchmarks/fits
            continue
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
            timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert done.returncode == 0, (module, done.stderr[-1000:])
