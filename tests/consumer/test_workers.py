"""Worker helpers that need no broker: per-worker config, the frozen startup heap, supervision."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.process import BaseProcess

import pytest

from consumer.config import Config
from consumer.errors import ConfigError
from consumer.workers import check_worker_ports, freeze_startup_heap, supervise, worker_config


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_startup_objects_leave_the_collectors_generations(unfrozen: None) -> None:
    gc.unfreeze()
    startup = [{"weights": list(range(10))} for _ in range(1000)]  # tracked containers
    before = gc.get_freeze_count()
    freeze_startup_heap()
    assert gc.get_freeze_count() >= before + len(startup)
    assert gc.get_count()[0] < 10  # the young generation starts empty


def test_worker_ports_are_offset_by_index_unless_any_free_port() -> None:
    config = Config()
    fixed = replace(config, server=replace(config.server, port=9500))
    assert worker_config(fixed, 2).server.port == 9502
    anywhere = replace(config, server=replace(config.server, port=0))
    assert worker_config(anywhere, 3).server.port == 0


def test_every_listener_gets_a_port_per_worker() -> None:
    config = Config()
    both = replace(
        config,
        server=replace(config.server, port=9400),
        api=replace(config.api, enabled=True, port=9500),
    )
    assert (worker_config(both, 1).server.port, worker_config(both, 1).api.port) == (9401, 9501)
    free = replace(both, api=replace(both.api, port=0))
    assert worker_config(free, 3).api.port == 0


def test_identities_the_broker_fences_on_differ_per_forked_worker() -> None:
    config = Config()
    config = replace(
        config,
        delivery=replace(config.delivery, mode="exactly_once", transactional_id="scorer-a"),
        kafka=replace(config.kafka, consumer={"group.instance.id": "pod-7", "x": "1"}),
    )
    first, second = worker_config(config, 0), worker_config(config, 2)
    assert first.delivery.transactional_id == "scorer-a"  # unchanged for a single worker
    assert first.kafka.consumer["group.instance.id"] == "pod-7"
    assert second.delivery.transactional_id == "scorer-a-2"
    assert second.kafka.consumer == {"group.instance.id": "pod-7-2", "x": "1"}
    unset = worker_config(Config(), 1)
    assert unset.delivery.transactional_id == ""  # the default id already carries the index
    assert "group.instance.id" not in unset.kafka.consumer


@pytest.mark.parametrize(
    ("server_port", "api_port", "workers", "match"),
    [
        (9400, 9401, 2, "api.port: 9400..9401 and 9401..9402 overlap with 2 workers"),
        (9400, 9402, 3, "api.port: .* overlap with 3 workers"),
        (65535, 9500, 2, "server.port: 65535 \\+ 2 workers passes port 65535"),
    ],
)
def test_overlapping_worker_ports_are_refused(
    server_port: int, api_port: int, workers: int, match: str
) -> None:
    config = Config()
    config = replace(
        config,
        server=replace(config.server, port=server_port),
        api=replace(config.api, enabled=True, port=api_port),
    )
    with pytest.raises(ConfigError, match=match):
        check_worker_ports(config, workers)


def test_ports_far_enough_apart_are_accepted() -> None:
    config = Config()
    config = replace(config, api=replace(config.api, enabled=True, port=9402))
    check_worker_ports(config, 2)  # 9400..9401 and 9402..9403
    disabled = replace(config, api=replace(config.api, enabled=False, port=9401))
    check_worker_ports(disabled, 2)


def _sleeper() -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    time.sleep(60)
    os._exit(0)


def _crasher(code: int) -> None:
    time.sleep(0.2)
    os._exit(code)


def _self_kill() -> None:
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def _spawn(target: Callable[..., None], *args: object) -> BaseProcess:
    proc = multiprocessing.get_context("fork").Process(target=target, args=args)
    proc.start()
    return proc


@pytest.mark.parametrize(
    ("dying", "code"),
    [((_crasher, 3), 3), ((_self_kill,), 137), ((_crasher, 0), 1)],
)
def test_a_dying_worker_stops_the_group_with_its_exit_code(
    dying: tuple[Callable[..., None], ...], code: int
) -> None:
    survivor = _spawn(_sleeper)
    dead = _spawn(*dying)
    started = time.monotonic()
    assert supervise([survivor, dead], threading.Event(), 10.0) == code
    assert survivor.exitcode == 0  # asked to stop (SIGTERM), not left running
    assert time.monotonic() - started < 10


def test_workers_stopped_by_the_parent_exit_with_their_own_codes() -> None:
    procs = [_spawn(_sleeper), _spawn(_sleeper)]
    stopping = threading.Event()

    def stop_soon() -> None:
        time.sleep(0.3)
        stopping.set()
        for proc in procs:
            os.kill(proc.pid or 0, signal.SIGTERM)

    threading.Thread(target=stop_soon, daemon=True).start()
    assert supervise(procs, stopping, 10.0) == 0
