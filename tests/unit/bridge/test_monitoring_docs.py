"""docs/monitoring.md lists every metric; the alert rules and the dashboard are well formed
and use only metrics that exist. promtool is not installed by the test setup (Debian ships
it only inside the whole Prometheus server package, ~100 MB): the rule file's structure is
checked here and every expression is parsed with promql-parser (a PromQL parser from PyPI);
the alert templates ({{ $labels... }}) are not checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import yaml
from prometheus_client.metrics import MetricWrapperBase

from bridge.observability import metrics

DOCS = Path(__file__).resolve().parents[3] / "docs"
SUFFIXES = {"counter": ("_total",), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count")}


def _families() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in dir(metrics):
        metric = getattr(metrics, name)
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                found[family.name] = family.type
    return found


def _exposed() -> set[str]:
    return {name + suffix for name, kind in _families().items()
            for suffix in SUFFIXES[kind]}


def _names_in(text: str) -> set[str]:
    return set(re.findall(r"\bbridge_[a-z_]+\b", text))


def test_every_metric_is_documented_and_every_documented_one_exists() -> None:
    text = (DOCS / "monitoring.md").read_text()
    documented = _names_in(text)
    families = _families()
    assert len(families) >= 19
    for name, kind in families.items():
        shown = name + ("_total" if kind == "counter" else "")
        assert f"`{shown}`" in text, f"{shown} is not in docs/monitoring.md"
    allowed = _exposed() | set(families)  # a histogram is named by its family too
    assert documented <= allowed, documented - allowed


def test_alert_rules_are_well_formed_and_use_existing_metrics() -> None:
    doc = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text())
    assert set(doc) == {"groups"}
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert all(group["name"] and group["rules"] for group in doc["groups"])
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names)
    assert {"BridgeADSyncNotSucceeding", "BridgeADSyncMassChangeStop",
            "BridgeSignInErrorRatioHigh", "BridgeMailFailing"} <= set(names)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0s")), rule["alert"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        used = _names_in(rule["expr"])
        assert used and used <= _exposed(), (rule["alert"], used - _exposed())
        # Labels an alert's text uses must survive the expression's aggregation.
        for label in re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])):
            assert f"by ({label})" in rule["expr"] or "by (" not in rule["expr"]


def test_dashboard_imports_and_uses_existing_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expr in exprs:
        promql_parser.parse(expr)
    used = set().union(*(_names_in(e) for e in exprs))
    assert used <= _exposed(), used - _exposed()
    # Every family has a panel.
    assert {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used} >= set(_families())
