"""The Apache Kafka broker's jars: fetched once with Maven into a cache folder, then reused.

Invariant: the jar cache is valid only when its marker holds the hash of the pom that produced
it, so an interrupted fetch or a changed dependency list is fetched again. A file lock keeps two
processes from running Maven into the same folder at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from consumer.errors import StreamScorerError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
# kafka_2.13 declares no SLF4J binding; without log4j-slf4j-impl the broker logs nothing at all.
_LOG4J_VERSION = "2.24.3"
_TAIL_LINES = 40

_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stream-scorer</groupId>
  <artifactId>local-kafka</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{_LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

# Everything goes to stdout, which start() redirects to the log file: one file then also holds
# what the JVM prints before log4j is up (missing class, wrong Java version).


class LocalKafkaError(StreamScorerError):
    """The local broker or its jars could not be provided; ``detail`` holds the output tail."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(f"{message}\n{detail}" if detail else message)
        self.detail = detail


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """STREAM_SCORER_CACHE, else ``<checkout>/.cache``, else the user cache directory."""
    if environ.get("STREAM_SCORER_CACHE"):
        return Path(environ["STREAM_SCORER_CACHE"])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache"
    user_cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(user_cache) / "stream-scorer"


def ensure_jars(cache_dir: Path) -> Path:
    """Return the directory holding the broker's runtime jars, fetching them on first use."""
    root = cache_dir / f"kafka-{KAFKA_VERSION}"
    lib, marker = root / "lib", root / ".fetched"
    expected = hashlib.sha256(_POM.encode()).hexdigest()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        # Two test processes warming the same cache must not interleave Maven runs.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == expected:
            return lib
        _fetch(root, lib)
        marker.write_text(expected)
    return lib


def _fetch(root: Path, lib: Path) -> None:
    mvn = require_tool("mvn")
    require_tool("java")
    shutil.rmtree(lib, ignore_errors=True)
    (root / "pom.xml").write_text(_POM)
    logger.info("fetching Kafka %s jars into %s", KAFKA_VERSION, lib)
    started = time.monotonic()
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(root / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalKafkaError(
            f"Maven failed with exit code {result.returncode}", tail(result.stdout + result.stderr)
        )
    logger.info("fetched Kafka jars in %.1f s", time.monotonic() - started)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalKafkaError(
            f"{name!r} is not on PATH; the local Kafka broker needs Java 17+ "
            "and Maven (or set KAFKA_BOOTSTRAP to use an existing cluster)"
        )
    return path


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])
