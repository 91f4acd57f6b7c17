"""The README's metrics reference is the registry's: every exported family once, with its type and
label names, and nothing the registry does not export."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from consumer.metrics import Metrics
from tests.deploy.contract import CONTRACT, ROOT

ROW = re.compile(r"^\| `([a-z0-9_:]+)(?:\{([a-z_,]+)\})?` \| (counter|gauge|histogram) \|", re.M)
_SUFFIX = {"counter": "_total", "gauge": "", "histogram": ""}


def readme_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Exported name -> (type, label names) of each row of the Observability metrics table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Metrics reference") : text.index("### Trace context")]
    rows = ROW.findall(section)
    table = {
        name: (kind, tuple(labels.split(",")) if labels else ()) for name, labels, kind in rows
    }
    assert len(table) == len(rows), "a metric listed twice"
    return table


def registry_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    registry = CollectorRegistry()
    Metrics(registry)
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for metric in registry.collect():
        if metric.name in CONTRACT:
            labels = CONTRACT[metric.name].labels  # families without children show no labels
        else:
            labels = tuple(metric.samples[0].labels) if metric.samples else ()
            labels = tuple(label for label in labels if label != "le")
        out[metric.name + _SUFFIX[metric.type]] = (metric.type, labels)
    return out


def test_the_readme_lists_exactly_the_exported_metrics_with_types_and_labels() -> None:
    readme, registry = readme_table(), registry_table()
    assert sorted(set(registry) - set(readme)) == [], "exported but not in the README"
    assert sorted(set(readme) - set(registry)) == [], "in the README but not exported"
    for name, (kind, labels) in registry.items():
        assert readme[name][0] == kind, name
        assert sorted(readme[name][1]) == sorted(labels), name


def test_the_table_is_read_at_all() -> None:
    table = readme_table()
    assert len(table) >= 40
    assert table["stream_scorer_trace_context_dropped_total"] == ("counter", ("source", "header"))
