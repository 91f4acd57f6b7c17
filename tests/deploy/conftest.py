"""Fixtures for the deploy tests: the Prometheus binaries, installed on demand.

`promtool` and `prometheus` come from Debian's ``prometheus`` package. When either is missing,
the session runs ``scripts/system-deps.sh`` (what ``make test`` and CI run too); only if that cannot
install them (not root, no apt) are the tests that need them skipped, with the script's reason.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache

import pytest

from tests.deploy.contract import ROOT

SYSTEM_DEPS = ROOT / "scripts" / "system-deps.sh"


@cache
def _ensure_prometheus() -> str | None:
    """None when promtool and prometheus are on PATH, else why they could not be installed."""
    if shutil.which("promtool") and shutil.which("prometheus"):
        return None
    done = subprocess.run(
        ["bash", str(SYSTEM_DEPS)], capture_output=True, text=True, timeout=600, check=False
    )
    if shutil.which("promtool") and shutil.which("prometheus"):
        return None
    detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return (
        f"promtool/prometheus missing and {SYSTEM_DEPS.name} could not install them "
        f"(exit {done.returncode}): {detail[0]}"
    )


def _binary(name: str) -> str:
    reason = _ensure_prometheus()
    path = shutil.which(name)
    if reason is not None or path is None:
        pytest.skip(reason or f"{name} not on PATH")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary("prometheus")
