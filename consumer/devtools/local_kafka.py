"""A local single-node Apache Kafka (KRaft) broker for tests, the demo and the benchmarks.

Responsibilities: fetch the broker jars once through Maven into a cache directory, write a
combined broker+controller configuration, format its storage, run the JVM and wait until it
serves metadata, and stop it again. ``kafka_cluster`` lets callers use an external cluster
instead, and ``create_topics`` works against either.

Invariants:
- Jars come from `consumer.devtools.kafka_jars` (fetched once, reused); the node's configuration
  and JVM flags from `consumer.devtools.kafka_node`; readiness and topic creation from
  `consumer.devtools.kafka_topics`.
- A broker never outlives the Python process that started it: it runs in its own session (a
  terminal's Ctrl-C does not reach it; ``stop`` decides), ``stop`` is registered with ``atexit``,
  and on Linux the kernel SIGKILLs it when the starting *thread* exits (PR_SET_PDEATHSIG), so
  start brokers from a long-lived thread.
- ``restart`` keeps every port and the data directory: clients holding ``bootstrap`` reconnect.
- Secured (``security`` given, see `consumer.devtools.kafka_node.BrokerSecurity`): ``bootstrap``
  is a SASL_SSL listener; readiness checks and topic creation authenticate as the admin user
  (``admin_properties``); SCRAM users are created when the storage is formatted.

Errors: every failure to fetch, format, start or create topics raises ``LocalKafkaError``, a
direct ``StreamScorerError``: fatal to the caller, nothing here retries beyond its own bounded
waits. It carries the tail of the Maven or broker output as ``detail``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

from consumer.devtools.kafka_jars import (
    KAFKA_VERSION,
    LocalKafkaError,
    default_cache_dir,
    ensure_jars,
    require_tool,
    tail,
)
from consumer.devtools.kafka_node import (
    LOG4J2,
    NODE_ID,
    BrokerSecurity,
    broker_properties,
    free_ports,
    jvm_options,
    new_cluster_id,
    write_properties,
)
from consumer.devtools.kafka_topics import await_broker, create_topics

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "LocalKafkaError",
    "broker_properties",
    "create_topics",
    "default_cache_dir",
    "die_with_parent_prefix",
    "ensure_jars",
    "jvm_options",
    "kafka_cluster",
]

logger = logging.getLogger(__name__)


def die_with_parent_prefix() -> list[str]:
    """A command prefix asking Linux to SIGKILL the broker when its parent goes away.

    `setpriv --pdeathsig` sets PR_SET_PDEATHSIG at exec time. A Python preexec_fn would do the same
    but runs Python between fork and exec, which crashes or deadlocks once the parent has other
    threads (librdkafka's, in tests that restart the broker).
    """
    setpriv = shutil.which("setpriv")
    if not sys.platform.startswith("linux") or setpriv is None:
        return []
    return [setpriv, "--pdeathsig", "KILL"]


class LocalKafka:
    """One combined broker+controller JVM on 127.0.0.1; a context manager (start ... close).

    Without ``data_dir`` a temporary directory is created on start and deleted by ``close``;
    a given ``data_dir`` is kept. Broker output goes to ``log_file`` (default
    ``<data_dir>/broker.log``), appended across restarts.
    """

    def __init__(
        self,
        cache_dir: Path,
        data_dir: Path | None = None,
        port: int | None = None,
        log_file: Path | None = None,
        start_timeout_s: float = 60.0,
        security: BrokerSecurity | None = None,
    ) -> None:
        self._cache_dir = cache_dir
        self._data_dir = data_dir
        self._owns_data_dir = data_dir is None
        self._port = port
        self._controller_port: int | None = None
        self._internal_port: int | None = None
        self._security = security
        self._log_file = log_file
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalKafka:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def bootstrap(self) -> str:
        if self._port is None:
            raise LocalKafkaError("the local broker has not been started")
        return f"127.0.0.1:{self._port}"

    @property
    def security(self) -> BrokerSecurity | None:
        return self._security

    @property
    def admin_properties(self) -> dict[str, str]:
        """librdkafka properties of an admin (super user) client; empty when not secured."""
        if self._security is None:
            return {}
        return self._security.client_properties(self._security.admin)

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise LocalKafkaError("the local broker has not been started")
        return self._data_dir

    @property
    def log_file(self) -> Path:
        return self._log_file or self.data_dir / "broker.log"

    def start(self) -> None:
        """Start the broker and return once it serves metadata; no-op if it is running."""
        if self.is_running:
            return
        lib = ensure_jars(self._cache_dir)
        config = self._write_config(self._prepare_data_dir(), *self._ports())
        self._format_storage(lib, config)
        started = time.monotonic()
        self._launch(lib, config)
        try:
            await_broker(
                self.bootstrap, NODE_ID, self._process_exited, self._start_timeout_s,
                self.admin_properties,
            )  # fmt: skip
        except LocalKafkaError as exc:
            self.kill()
            raise LocalKafkaError(str(exc), self._logtail()) from exc
        logger.info(
            "Kafka broker ready at %s in %.1f s (log: %s)",
            self.bootstrap,
            time.monotonic() - started,
            self.log_file,
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``timeout_s``; idempotent."""
        process = self._detach()
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("broker did not stop within %.0f s; killing it", timeout_s)
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; ``restart`` brings it back."""
        process = self._detach()
        if process is not None:
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def restart(self) -> None:
        """Stop (if running) and start again on the same ports and data directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and delete the data directory if this object created it."""
        self.stop()
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def create_topics(self, names: Sequence[str], partitions: int = 1) -> None:
        create_topics(self.bootstrap, names, partitions, properties=self.admin_properties)

    def _detach(self) -> subprocess.Popen[bytes] | None:
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        return process

    def _process_exited(self) -> bool:
        return not self.is_running

    def _prepare_data_dir(self) -> Path:
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="stream-scorer-kafka-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        return self._data_dir

    def _ports(self) -> tuple[int, int, int]:
        """Chosen once, so a restarted broker answers where clients already point."""
        if self._port is None or self._controller_port is None or self._internal_port is None:
            free = [port for port in free_ports(4) if port != self._port]
            self._port = self._port or free.pop()
            self._controller_port, self._internal_port = free[0], free[1]
        return self._port, self._controller_port, self._internal_port

    def _write_config(
        self, data_dir: Path, port: int, controller_port: int, internal_port: int
    ) -> Path:
        config = data_dir / "server.properties"
        properties = broker_properties(
            port, controller_port, data_dir / "kraft", self._security, internal_port
        )
        write_properties(config, properties)
        (data_dir / "log4j2.properties").write_text(LOG4J2)
        return config

    def _format_storage(self, lib: Path, config: Path) -> None:
        if (config.parent / "kraft" / "meta.properties").is_file():
            return
        command = [
            *self._java(lib, config),
            "kafka.tools.StorageTool",
            "format",
            # "=" form: a base64url id may begin with "-" and would parse as an option.
            f"--cluster-id={new_cluster_id()}",
            f"--config={config}",
            *(self._security.scram_arguments() if self._security is not None else []),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                "formatting the broker storage failed", tail(result.stdout + result.stderr)
            )

    def _launch(self, lib: Path, config: Path) -> None:
        command = [
            *die_with_parent_prefix(),
            *self._java(lib, config),
            *jvm_options(os.environ),
            "kafka.Kafka",
            str(config),
        ]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        logger.debug("started broker pid %d: %s", self._process.pid, command)

    @staticmethod
    def _java(lib: Path, config: Path) -> list[str]:
        log4j = config.parent / "log4j2.properties"
        return [require_tool("java"), f"-Dlog4j2.configurationFile={log4j}", "-cp", str(lib / "*")]

    def _logtail(self) -> str:
        try:
            return tail(self.log_file.read_text(errors="replace"))
        except OSError:
            return ""


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # the JVM leads its own session and process group


@contextlib.contextmanager
def kafka_cluster(cache_dir: Path, bootstrap: str | None) -> Iterator[str]:
    """Yield ``bootstrap`` untouched if given, else the address of a throwaway local broker."""
    if bootstrap:
        logger.info("using the external Kafka cluster at %s", bootstrap)
        yield bootstrap
        return
    with LocalKafka(cache_dir) as kafka:
        yield kafka.bootstrap


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    with LocalKafka(args.cache_dir, data_dir=args.data_dir, port=args.port) as kafka:
        print(kafka.bootstrap, flush=True)
        try:
            while kafka.is_running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            logger.info("stopping the broker")
            return 0
        logger.error("the broker exited unexpectedly; see %s", kafka.log_file)
        return 1


def _parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.local_kafka",
        description="Local Apache Kafka broker for development.",
    )
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(environ))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download the broker jars into the cache")
    run = commands.add_parser("run", help="run a broker in the foreground until Ctrl-C")
    run.add_argument("--data-dir", type=Path, default=None, help="kept (default: temporary)")
    run.add_argument("--port", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "fetch":
            print(ensure_jars(args.cache_dir), flush=True)
            return 0
        return _run(args)
    except LocalKafkaError as exc:
        logger.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
