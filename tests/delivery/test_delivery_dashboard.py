"""The Grafana dashboard in deploy/grafana queries only metrics the code registers, with labels
those metrics have: it cannot rot when a metric is renamed or loses a label.

The metrics are read from the registries the components create (the engine's, trigger
server's and operator's :class:`~natsflow_engine.observability.Metrics`, the tenant
connections' and the console's gauge), not from a list kept by hand. Every PromQL expression of
the dashboard, its panels and its template variables, is tokenized: what is left after string
literals, label matchers, ``by (...)`` groupings, range selectors and numbers are taken out
must be a PromQL function, aggregation or keyword, or a natsflow metric sample name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from natsflow_console import routes
from natsflow_engine.accounts.connections import TenantConnectionMetrics
from natsflow_engine.observability import Metrics
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "natsflow-dashboard.json"

PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "on", "ignoring", "and", "or", "unless", "label_values", "clamp_min",
}  # fmt: skip
"""PromQL functions, aggregations and keywords the dashboard may use (grow as needed)."""

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def registered() -> dict[str, set[str]]:
    """Every sample name the components can expose, with the label names it carries."""
    owners = [Metrics(), TenantConnectionMetrics(CollectorRegistry())]
    wrappers = [v for o in owners for v in vars(o).values() if isinstance(v, MetricWrapperBase)]
    wrappers.append(routes.STREAMS)
    found: dict[str, set[str]] = {}
    for wrapper in wrappers:
        labels = set(wrapper._labelnames)
        for family in wrapper.describe():
            for suffix in SUFFIXES[family.type]:
                found[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return found


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression in the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str) and "(" in value:
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*,?')
LABEL_VALUES = re.compile(r"\blabel_values\(\s*([^,()]+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)")
GROUPING = re.compile(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)")


def check(expr: str, metrics: dict[str, set[str]]) -> list[str]:
    """What is wrong with one expression (empty: nothing)."""
    problems: list[str] = []
    used: set[str] = set()
    for selector, label in LABEL_VALUES.findall(expr):  # Grafana's label_values(metric, label)
        name = selector.split("{")[0].strip()
        if name in metrics and label not in metrics[name]:
            problems.append(f"{name} has no label {label!r}")
    expr = LABEL_VALUES.sub(lambda m: m.group(1), expr)
    for name, body in SELECTOR.findall(expr):
        rest = MATCHER.sub("", body)
        if rest.strip():
            problems.append(f"cannot read the label matchers {body!r} of {name}")
        labels = {m.group(1) for m in MATCHER.finditer(body)}
        if name in metrics and not labels <= metrics[name]:
            problems.append(f"{name} has no label {sorted(labels - metrics[name])}")
    bare = SELECTOR.sub(lambda m: f" {m.group(1)} ", expr)
    for _, names in GROUPING.findall(bare):
        used |= {n.strip() for n in names.split(",") if n.strip()}
    bare = GROUPING.sub(" ", bare)
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
        if token in PROMQL_WORDS:
            continue
        if token not in metrics:
            problems.append(f"{token!r} is neither a PromQL word nor a registered natsflow metric")
    for label in used - {"le"}:
        named = {t for t in re.findall(r"\bnatsflow_[a-z0-9_]+", expr) if t in metrics}
        if named and not any(label in metrics[t] for t in named):
            problems.append(f"grouping by {label!r}, a label none of {sorted(named)} has")
    return problems


def test_registries_are_read() -> None:
    metrics = registered()
    assert "natsflow_engine_steps_total" in metrics
    assert metrics["natsflow_engine_step_seconds_bucket"] == {"command", "le"}
    assert "natsflow_autoscaler_decisions_total" in metrics  # the operator's
    assert "natsflow_tenant_connection_up" in metrics
    assert "natsflow_console_event_streams" in metrics


def test_dashboard_is_valid_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_queried_metric_is_registered() -> None:
    metrics = registered()
    dashboard = json.loads(DASHBOARD.read_text())
    problems = {e: p for e in expressions(dashboard) if (p := check(e, metrics))}
    assert not problems, json.dumps(problems, indent=1)
    queried = {t for e in expressions(dashboard) for t in re.findall(r"\bnatsflow_[a-z0-9_]+", e)}
    families = {name.removesuffix("_bucket") for name in queried}
    assert "natsflow_jobs_pending" in families  # engine, workers, triggers, operator are all covered
    assert "natsflow_trigger_messages_received_total" in families
    assert "natsflow_autoscaler_decisions_total" in families


@pytest.mark.parametrize(
    "expr",
    [
        "sum(rate(natsflow_engine_stepz_total[5m]))",  # a renamed metric
        'sum by (queue) (natsflow_jobs_pending{tenant="a"})',  # a label it does not have
        'natsflow_jobs_pending{worker="w"}',
        "sum(rate(process_cpu_seconds_total[1m]))",  # not a natsflow metric
        "label_values(natsflow_engine_step_seconds_bucket, tenant)",  # the histogram has no tenant
    ],
)
def test_the_check_finds_a_wrong_query(expr: str) -> None:
    assert check(expr, registered())
