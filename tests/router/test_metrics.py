"""The README's metrics catalog is the truth about router/metrics.py: every metric, its
type and its labels, and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import router.metrics
from router.metrics import status_class

README = Path(__file__).resolve().parents[2] / "README.md"


def catalog() -> dict[str, tuple[str, set[str]]]:
    """Rows of the README's metrics table: name -> (type, label names)."""
    section = README.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, set[str]]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        labels = set(re.findall(r"`([a-z_]+)`", cells[2]))
        rows[cells[0].strip("`")] = (cells[1], labels)
    return rows


def defined() -> dict[str, tuple[str, set[str]]]:
    """Every metric router/metrics.py defines, by its exposed name."""
    metrics: dict[str, tuple[str, set[str]]] = {}
    for metric in vars(router.metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        kind = metric._type  # counter, gauge, histogram
        suffix = "_total" if kind == "counter" else ""
        metrics[metric._name + suffix] = (kind, set(metric._labelnames))
    return metrics


def test_readme_catalog_lists_every_metric_with_its_type_and_labels() -> None:
    # Given the metrics the code defines and the README's table
    code, readme = defined(), catalog()
    # Then they are the same set, with the same types and labels
    assert code, "router/metrics.py defines no metric"
    assert sorted(readme) == sorted(code)
    for name, (kind, labels) in code.items():
        assert readme[name] == (kind, labels), name


def test_status_class_groups_codes_and_names_errors() -> None:
    # Given response codes and a failure without a response
    # Then each maps to its class
    assert status_class(204) == "2xx"
    assert status_class(503) == "5xx"
    assert status_class(None) == "error"
