"""The project's import graph: no cycle anywhere, and each package imports only what it may.

Run alone with ``.venv/bin/pytest tests/test_layers.py``; ``python -m tests.test_layers`` prints
the graph's edges between packages. Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("consumer", "scoring", "schemas")

# Who may import whom, for sub-packages of `consumer` (prefix match on dotted names).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "consumer.stream": ("consumer.api", "consumer.service", "consumer.devtools", "consumer.cli",
                        "consumer.workers", "consumer.wiring"),
    "consumer.features": ("consumer.stream", "consumer.api", "consumer.service",
                          "consumer.devtools", "consumer.models", "consumer.wiring"),
    "consumer.models": ("consumer.stream", "consumer.api", "consumer.service",
                        "consumer.devtools", "consumer.features", "consumer.wiring"),
    "consumer.api": ("consumer.service", "consumer.devtools", "consumer.workers", "consumer.cli"),
    "consumer.wiring": ("consumer.service", "consumer.api", "consumer.devtools"),
    "consumer.service": ("consumer.devtools",),
    "consumer.security": ("consumer.stream", "consumer.api", "consumer.service",
                          "consumer.devtools", "consumer.features"),
    "consumer.telemetry": ("consumer.stream.loop", "consumer.stream.processor", "consumer.api",
                           "consumer.service", "consumer.devtools", "consumer.wiring"),
    "schemas": ("consumer", "scoring"),
    "scoring": ("consumer", "schemas"),
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Project modules imported by `name` (``from a import b`` counts a.b when it is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield sub
                elif base in known:
                    yield base


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {n: {m for m in imports_of(n, p, known) if m != n} for n, p in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_no_import_cycle_anywhere() -> None:
    assert cycles(graph()) == []


def test_cycle_detection_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_packages_import_only_what_they_may() -> None:
    bad = [
        f"{src} imports {dst}"
        for src, targets in graph().items()
        for dst in targets
        for scope, banned in FORBIDDEN.items()
        if _within(src, scope) and any(_within(dst, b) for b in banned)
    ]
    assert bad == []


def test_serving_path_never_imports_devtools() -> None:
    entry_points = {"consumer.cli", "consumer.local_kafka", "consumer.demo_data"}
    bad = [
        f"{src} imports {dst}"
        for src, targets in graph().items()
        if not _within(src, "consumer.devtools") and src not in entry_points
        for dst in targets
        if _within(dst, "consumer.devtools")
    ]
    assert bad == []


KEPT_ENTRY_POINTS = {"local_kafka.py", "demo_data.py"}  # `python -m consumer.X`, kept for scripts


def test_no_consumer_folder_is_crowded() -> None:
    for folder in [ROOT / "consumer", *(p for p in (ROOT / "consumer").iterdir() if p.is_dir())]:
        if folder.name != "__pycache__":
            kept = KEPT_ENTRY_POINTS if folder.name == "consumer" else set()
            modules = [p for p in folder.glob("*.py") if p.name not in kept | {"__init__.py"}]
            assert len(modules) <= 13, folder


if __name__ == "__main__":
    for src, targets in sorted(graph().items()):
        for dst in sorted(targets):
            print(f"{src} -> {dst}")
