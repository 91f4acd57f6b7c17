"""``scoring`` depends on numpy and the standard library only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import scoring

ALLOWED = {"numpy", "scoring", "__future__"}
FORBIDDEN = {"confluent_kafka", "aiohttp", "prometheus_client", "fastavro", "consumer", "schemas"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_scoring_imports_only_stdlib_and_numpy() -> None:
    files = sorted(Path(scoring.__file__).parent.rglob("*.py"))
    assert len(files) >= 10
    offenders = {}
    for path in files:
        outside = {
            r for r in imported_roots(path) if r not in ALLOWED and r not in sys.stdlib_module_names
        }
        if outside or imported_roots(path) & FORBIDDEN:
            offenders[path.name] = sorted(outside)
    assert offenders == {}


def test_the_checker_notices_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import json\nfrom confluent_kafka import Producer\nimport numpy.linalg\n")
    assert imported_roots(bad) == {"json", "confluent_kafka", "numpy"}
