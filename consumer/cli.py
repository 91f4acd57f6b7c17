"""The `stream-scorer` command.

Subcommands: run (the stream service), serve (the ranking API alone), produce (synthetic jobs),
demo (end to end on a local broker), train (fit a model). The entry point is the only place that
reads the process environment, parses arguments and configures logging handlers. Every failure
ends in one line on stderr and an exit code (`consumer.exits`), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, cast

from consumer.config import Config, load_config, read_config_file
from consumer.devtools.produce import add_produce_parser
from consumer.devtools.train import add_train_parser
from consumer.errors import StartupError
from consumer.exits import EXIT_CONFIG, describe
from consumer.telemetry.logs import configure_logging

log = logging.getLogger("consumer.cli")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EPILOG = """\
--log-level and --log-format work before or after the subcommand. Exit codes: 0 ok, 1 failure,
2 configuration or usage error, 69 the Kafka cluster stayed unreachable
(kafka.unreachable_exit_s), 70 internal error, 75 an exactly-once transaction stalled,
130 interrupted."""


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (with where to look), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _config(args: argparse.Namespace) -> Config:
    """The config of ``--config`` and the environment; logging then follows its ``[logs]``
    (``--log-format`` wins over ``logs.format``)."""
    text, base = read_config_file(Path(args.config) if args.config else None)
    config = load_config(os.environ, text, base)
    _configure_logs(args, config)
    return config


def _configure_logs(args: argparse.Namespace, config: Config) -> None:
    """Logging as configured (``[logs]``); ``--log-format`` wins over ``logs.format``."""
    logs = config.logs
    configure_logging(args.log_level, args.log_format or logs.format,
                      logs.librdkafka_lines_per_s, logs.librdkafka_burst)  # fmt: skip


def cmd_run(args: argparse.Namespace) -> int:
    from consumer.workers import run_worker, run_workers

    config = _config(args)
    log.info("starting with %r", config)
    if args.workers > 1:
        return run_workers(config, args.workers)
    return run_worker(config, args.worker_index)


def cmd_serve(args: argparse.Namespace) -> int:
    from consumer.api.server import serve

    config = _config(args)
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        serve(config, stop)
    except StartupError as exc:
        raise StartupError(exc.reason, key=exc.key or "api.port") from exc
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from consumer.devtools.demo import DemoOptions, run_demo

    options = DemoOptions(jobs=args.jobs, latency_seconds=args.latency_seconds, seed=args.seed)
    return run_demo(options, os.environ)


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_log_options(parser: argparse.ArgumentParser, level: str, fmt: str | None) -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=level,
        help="log level: DEBUG, INFO (default), WARNING, ERROR or CRITICAL",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=fmt,
        help="log lines as text or JSON (default: the config's logs.format, else text)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stream-scorer",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_log_options(parser, "INFO", None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the scoring service (the Kafka loop)")
    run.add_argument("--config", help="TOML config file (env STREAM_SCORER__* overrides)")
    run.add_argument(
        "--workers", type=_positive, default=1, help="scorer processes in this group (default 1)"
    )
    run.add_argument(
        "--worker-index",
        type=_non_negative,
        default=0,
        help="this process's worker index: names its default transactional id (default 0)",
    )
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="run the synchronous ranking API alone")
    serve.add_argument("--config", help="TOML config file (env STREAM_SCORER__* overrides)")
    serve.set_defaults(func=cmd_serve)

    add_produce_parser(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))

    demo = sub.add_parser("demo", help="score a demo stream end to end on a local broker")
    demo.add_argument("--jobs", type=_positive, default=20_000, help="backlog jobs (default 20000)")
    demo.add_argument(
        "--latency-seconds",
        type=_seconds,
        default=5.0,
        help="how long the open-loop latency phase runs (default 5)",
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(func=cmd_demo)

    add_train_parser(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))
    for subparser in sub.choices.values():
        # SUPPRESS: given after the subcommand it wins, absent it keeps the top-level value
        _add_log_options(subparser, argparse.SUPPRESS, argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format or "text")
    try:
        code: int = args.func(args)
    except (Exception, KeyboardInterrupt) as exc:
        failure = describe(exc)
        log.debug("%s failed", args.command, exc_info=True)
        print(f"stream-scorer: {failure.line}", file=sys.stderr)
        return failure.code
    return code


if __name__ == "__main__":
    sys.exit(main())
