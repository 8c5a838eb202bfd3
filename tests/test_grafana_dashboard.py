"""The Grafana dashboard only queries metrics that gotaskq really exports."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "gotaskq.json"
METRIC_RE = re.compile(r"\bgotaskq_[A-Za-z0-9_]+")
HISTOGRAM_SUFFIX_RE = re.compile(r"_(bucket|sum|count)$")


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets and template variable queries."""
    out = [t["expr"] for p in all_panels(dashboard["panels"]) for t in p.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def base_name(name: str) -> str:
    """Counter families are named without ``_total``; histogram series add a suffix."""
    return HISTOGRAM_SUFFIX_RE.sub("", name).removesuffix("_total")


def exported_families() -> dict[str, str]:
    """Family name (without ``_total``) -> type, from a real ``Metrics`` registry."""
    metrics_mod = pytest.importorskip("gotaskq.metrics", exc_type=ModuleNotFoundError)
    registry = metrics_mod.Metrics().registry
    return {fam.name.removesuffix("_total"): fam.type for fam in registry.collect()}


def test_dashboard_shape() -> None:
    d = load()
    assert d["uid"] == "gotaskq"
    assert 36 <= d["schemaVersion"] <= 41
    graphs = [p for p in all_panels(d["panels"]) if p["type"] != "row"]
    assert len(graphs) >= 8
    ids = [p["id"] for p in all_panels(d["panels"])]
    assert len(ids) == len(set(ids))
    for p in graphs:
        assert p["title"] and p["targets"], p.get("title")
        assert {t["refId"] for t in p["targets"]} == {chr(65 + i) for i in range(len(p["targets"]))}
        for t in p["targets"]:
            assert METRIC_RE.search(t["expr"]), (p["title"], t["expr"])
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
            assert t["expr"].count("{") == t["expr"].count("}"), t["expr"]


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, queue) (rate(gotaskq_job_wait_seconds_bucket{queue=~"$queue"}'
        "[$__rate_interval]))) / sum(rate(gotaskq_jobs_dead_total[5m]))"
    )
    names = {base_name(n) for n in METRIC_RE.findall(expr)}
    assert names == {"gotaskq_job_wait_seconds", "gotaskq_jobs_dead"}


def test_every_queried_metric_is_exported() -> None:
    families = exported_families()
    used = {name for e in exprs(load()) for name in METRIC_RE.findall(e)}
    assert len(used) >= 8
    for name in sorted(used):
        base = base_name(name)
        assert base in families, f"dashboard queries {name}, which gotaskq.metrics does not export"
        if HISTOGRAM_SUFFIX_RE.search(name):
            assert families[base] == "histogram", f"{name}: {base} is a {families[base]}"
        elif name.endswith("_total"):
            assert families[base] == "counter", f"{name}: {base} is a {families[base]}"
        else:
            # a bare histogram name matches no series in Prometheus
            assert families[base] != "histogram", f"{name} needs _bucket, _sum or _count"


def test_backend_wide_gauges_are_not_summed_across_processes() -> None:
    """Every process exports the same queue depths: a panel that sums them counts each once per
    process scraped, so it must take max by (queue, state) first."""
    text = DASHBOARD.read_text()
    for expr in re.findall(r'"expr": "([^"\\]*(?:\\.[^"\\]*)*)"', text):
        for metric in ("gotaskq_queue_depth", "gotaskq_workers"):
            if metric in expr:
                assert f"max by (queue, state) ({metric}" in expr or f"max({metric}" in expr, expr
