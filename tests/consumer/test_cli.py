"""The command line: every failure is one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer import cli
from consumer.cli import build_parser, main
from consumer.devtools.demo_data import DemoData, write_demo_data
from consumer.devtools.produce import resolve_target
from tests.deploy.contract import ROOT

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return write_demo_data(tmp_path_factory.mktemp("data"), 200, 50, seed=3, hash_bits=12)


def config_file(tmp_path: Path, data: DemoData, extra: str = "", server: bool = False) -> str:
    path = tmp_path / "scorer.toml"
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{CLOSED}"\n'
        f'[models]\ndirectory = "{data.models_dir}"\nreload_interval_s = 0\n'
        f'[features]\nusers_file = "{data.users_file}"\nitems_file = "{data.items_file}"\n'
        + ("" if server else "[server]\nenabled = false\n")
        + extra
    )
    return str(path)


LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def one_line(err: str) -> str:
    """The failure's one line; the run's ordinary log records (below ERROR) may precede it."""
    lines = [line for line in err.splitlines() if line.strip() and not LOG_RECORD.match(line)]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_invalid_config_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text("[batch]\nmax_jobs = 0\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "configuration error: batch.max_jobs: must be >= 1" in capsys.readouterr().err


def test_missing_model_directory_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text('[models]\ndirectory = "nowhere"\n[server]\nenabled = false\n')
    assert main(["run", "--config", str(config)]) == 1
    assert "ModelError" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "code", "expected"),
    [
        (
            '[kafka.consumer]\n"no.such.prop" = "1"\n',
            2,
            "configuration error: kafka.consumer: librdkafka refused a property: No such "
            'configuration property: "no.such.prop"',
        ),
        (
            '[kafka.producer]\n"security.protocol" = "ssl"\n"ssl.key.pem" = "garbage"\n',
            2,
            "configuration error: kafka.producer: librdkafka refused a property: Failed to "
            "create producer: ssl.key.pem failed",
        ),
        (
            '[kafka.consumer]\n"enable.auto.commit" = true\n',
            2,
            "configuration error: kafka.consumer.\"enable.auto.commit\": 'true' is refused",
        ),
        (
            "[batch]\nmax_jobs = 12.7\n",
            2,
            "configuration error: batch.max_jobs: expected an integer, got a float (12.7)",
        ),
    ],
)
def test_startup_failures_are_one_line_naming_the_key(
    tmp_path: Path,
    data: DemoData,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    code: int,
    expected: str,
) -> None:
    assert main(["run", "--config", config_file(tmp_path, data, extra)]) == code
    assert one_line(capsys.readouterr().err).startswith(f"stream-scorer: {expected}")


def test_unreachable_schema_registry_names_the_key(
    tmp_path: Path, data: DemoData, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    extra = f'[schemas]\nregistry_url = "{url}"\n'
    assert main(["run", "--config", config_file(tmp_path, data, extra)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"stream-scorer: cannot start: schemas.registry_url: schema registry "
                           f"error at {url}/schemas/ids/2")  # fmt: skip


@pytest.mark.parametrize("section", ["server", "api"])
def test_a_port_in_use_names_the_key_and_the_address(
    tmp_path: Path,
    data: DemoData,
    capsys: pytest.CaptureFixture[str],
    busy_port: int,
    section: str,
) -> None:
    extra = f"[{section}]\nenabled = true\nport = {busy_port}\n"
    if section == "api":
        extra += "[server]\nenabled = false\n"
    assert main(["run", "--config", config_file(tmp_path, data, extra, server=True)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line == (f"stream-scorer: cannot start: {section}.port: cannot listen on "
                    f"127.0.0.1:{busy_port}: Address already in use")  # fmt: skip


def test_serve_on_a_port_in_use_names_the_key(
    tmp_path: Path, data: DemoData, capsys: pytest.CaptureFixture[str], busy_port: int
) -> None:
    path = config_file(tmp_path, data, f"[api]\nport = {busy_port}\n")
    assert main(["serve", "--config", path]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"stream-scorer: cannot start: api.port: cannot listen on 127.0.0.1:"
                           f"{busy_port}")  # fmt: skip


def test_an_unexpected_error_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_args: argparse.Namespace) -> int:
        raise KeyError("surprise")

    monkeypatch.setattr(cli, "cmd_demo", broken)
    assert main(["demo"]) == 70
    line = one_line(capsys.readouterr().err)
    assert line.startswith("stream-scorer: internal error: KeyError: 'surprise'")


def test_a_bad_log_level_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--log-level", "loud", "run"])
    assert exited.value.code == 2
    line = one_line(capsys.readouterr().err)
    assert "argument --log-level: invalid choice: 'LOUD'" in line


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["run"], "INFO"),
        (["--log-level", "warning", "run"], "WARNING"),
        (["run", "--log-level", "debug"], "DEBUG"),
        (["--log-level", "error", "produce", "--log-level", "critical"], "CRITICAL"),
        (["train", "--impressions", "i", "--name", "n", "--out", "o", "--log-level", "debug"],
         "DEBUG"),
    ],
)  # fmt: skip
def test_log_level_works_before_or_after_the_subcommand(argv: list[str], level: str) -> None:
    assert build_parser().parse_args(argv).log_level == level


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_top_level_help_lists_every_subcommand_with_its_purpose() -> None:
    parser = build_parser()
    text = parser.format_help()
    subcommands = _subparsers(parser)
    assert set(subcommands) == {"run", "serve", "produce", "demo", "train"}
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    for name in subcommands:
        assert name in (parser.description or ""), name
        assert name in text
        purpose = helps[name]
        assert purpose
        assert purpose in " ".join(text.split())


@pytest.mark.parametrize("name", ["run", "serve", "produce", "demo", "train"])
def test_every_option_of_every_subcommand_has_help(name: str) -> None:
    parser = _subparsers(build_parser())[name]
    for action in parser._actions:
        assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def run_cli(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout_s, check=False,
    )  # fmt: skip


def test_produce_to_an_unreachable_broker_fails_in_one_line() -> None:
    address = f"127.0.0.1:{closed_port()}"
    done = run_cli("produce", "--bootstrap", address, "--jobs", "5", "--connect-timeout-s", "2")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith(f"stream-scorer: TransportError: cannot reach the Kafka cluster at "
                           f"{address} within 2 s: ")  # fmt: skip
    assert "Connection refused" in line
    assert "produced" not in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-X", "enable.idempotence=false"], "-X.\"enable.idempotence\": 'false' is refused"),
        (["-X", "no.such.prop=1"], "librdkafka refused the producer: No such configuration"),
        (["-X", "novalue"], "argument -X: expected name=value, got 'novalue'"),
    ],
)
def test_produce_refuses_bad_properties_in_one_line(args: list[str], expected: str) -> None:
    done = run_cli("produce", "--bootstrap", CLOSED, "--jobs", "1", *args)
    assert done.returncode == 2
    assert expected in one_line(done.stderr)


def test_a_config_file_that_is_not_utf8_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_bytes(b'[kafka]\ninput_topic = "\xff\xfe"\n')
    assert main(["run", "--config", str(config)]) == 2
    assert "is not UTF-8" in one_line(capsys.readouterr().err)


def test_a_missing_feature_token_file_names_the_key(
    tmp_path: Path, data: DemoData, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "scorer.toml"
    config.write_text(
        f'[models]\ndirectory = "{data.models_dir}"\n[server]\nenabled = false\n'
        '[features]\nsource = "http"\nurl = "http://127.0.0.1:1"\ntoken_file = "nope"\n'
    )
    assert main(["run", "--config", str(config)]) == 2
    line = one_line(capsys.readouterr().err)
    expected = f"features.token_file: no such file: {tmp_path / 'nope'}"
    assert line == f"stream-scorer: configuration error: {expected}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--jobs", "0"], "argument --jobs: must be >= 1, got 0"),
        (["--rate", "-5"], "argument --rate: must be >= 0, got -5"),
        (["--top-k", "0"], "argument --top-k: must be >= 1, got 0"),
        (["--candidates", "many"], "argument --candidates: expected a number, got 'many'"),
        (["--connect-timeout-s", "nan"], "argument --connect-timeout-s: must be >= 0.001"),
    ],
)
def test_produce_options_out_of_range_are_usage_errors(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["produce", *args])
    assert exited.value.code == 2
    assert expected in one_line(capsys.readouterr().err)


def test_a_cluster_never_reached_ends_the_run_with_69_after_the_bound(
    tmp_path: Path, data: DemoData, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = '[kafka.consumer]\n"statistics.interval.ms" = 200\n'
    path = Path(config_file(tmp_path, data, extra))
    server = f'bootstrap_servers = "{CLOSED}"\n'
    path.write_text(path.read_text().replace(server, server + "unreachable_exit_s = 2\n"))
    assert main(["run", "--config", str(path)]) == 69
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"stream-scorer: giving up: the Kafka cluster at {CLOSED} unreachable")


def test_produce_uses_the_common_kafka_properties_and_secret_files(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("pw-from-file\n")
    config = tmp_path / "scorer.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "broker:9093"\n'
        '[kafka.common]\n"security.protocol" = "SASL_SSL"\n"sasl.username" = "loader"\n'
        '[kafka.secret_files]\n"sasl.password" = "password"\n'
    )
    args = build_parser().parse_args(["produce", "--config", str(config), "--jobs", "3"])
    target = resolve_target(args, {})
    assert target.bootstrap == "broker:9093"
    assert target.properties["security.protocol"] == "SASL_SSL"
    assert target.properties["sasl.password"] == "pw-from-file"
