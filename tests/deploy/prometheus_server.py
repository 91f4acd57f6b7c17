"""A real Prometheus server for one test: loopback, a free port, temporary storage, killed after.

The scrape job is the compose config's own (deploy/prometheus/prometheus.yml) pointed at the
given targets, with 1 s scrape and rule-evaluation intervals and the repository's rule files.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml

from tests.deploy.contract import DEPLOY, RULES_DIR, SCRAPE_JOB, load_yaml


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(directory: Path, targets: list[str]) -> Path:
    compose: dict[str, Any] = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in compose["scrape_configs"] if j["job_name"] == SCRAPE_JOB]
    job["static_configs"] = [{"targets": targets}]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [job],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class PrometheusServer:
    """`async with PrometheusServer(binary, workdir, targets) as prom: await prom.query(...)`."""

    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PrometheusServer:
        config = write_config(self.workdir, self.targets)
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            await self._wait_ready(deadline=time.monotonic() + 30)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), timeout=10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                await self._process.wait()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    async def _wait_ready(self, deadline: float) -> None:
        assert self._session is not None
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise RuntimeError(f"prometheus exited ({self._process.returncode}):\n{self.log()}")
            try:
                async with self._session.get(f"{self.url}/-/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError(f"prometheus not ready within 30 s:\n{self.log()}")

    async def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raising on an API error."""
        assert self._session is not None
        async with self._session.get(f"{self.url}/api/v1/{path}", params=params) as response:
            body = await response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result
