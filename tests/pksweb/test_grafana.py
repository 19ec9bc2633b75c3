"""The Grafana dashboard (deploy/grafana/pksweb-dashboard.json) plots only what pksweb exports: every metric its
expressions name is a family of a real scrape of /metrics (or a series of one: _total, _bucket, _count, _sum)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pksweb-dashboard.json"
NAME = re.compile(r"\bpksweb_[a-z0-9_]+")
SERIES = re.compile(r"_(total|bucket|count|sum)$")


def expressions(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for item in node for e in expressions(item)]
    return []


def _scrape(operator) -> str:
    """One scrape, as an operator in the browser would (the dashboard's figures are the platform team's)."""
    client = Client()
    client.force_login(operator)
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return response.content.decode()


@pytest.mark.django_db
def test_every_expression_names_only_families_pksweb_exports(operator):
    dashboard = json.loads(DASHBOARD.read_text())
    found = expressions(dashboard["panels"])
    assert len(found) >= 20
    exported = {family.name: family.type for family in text_string_to_metric_families(_scrape(operator))}
    unknown, plotted = [], set()
    for expr in found:
        names = NAME.findall(expr)
        assert names, f"an expression that plots nothing of pksweb's: {expr}"
        for name in names:
            family = name if name in exported else SERIES.sub("", name)
            if family not in exported or (name != family and exported[family] not in ("counter", "histogram")):
                unknown.append(f"{name} in {expr}")
            plotted.add(family)
    assert unknown == []
    # And the dashboard shows every family pksweb exports of its own.
    assert {name for name in exported if name.startswith("pksweb_")} - plotted == set()
