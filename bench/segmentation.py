"""The who-can-reach-whom matrix of a large cluster: 50 namespaces, a few hundred pods.

In-process (the cluster reads are the cluster page's business, timed there): the pod-by-pod
evaluation, every cell with its one-line verdict (what the page needs), the page's HTML
rendered from them, and every cell with its reasons (what the API answers). Each policy's
selected pods, each rule's peers and each pod's allowed peers are bit sets, computed once.

    python bench/segmentation.py --namespaces 50 --pods 8 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, print_figures, write  # noqa: E402

NAME = "kubernetes.io/metadata.name"


def world(namespaces: int, pods_per_namespace: int) -> tuple[dict[str, dict[str, str]], list[Any], list[dict[str, Any]]]:
    """Seven tenants' namespaces, each with a default-deny, same-tenant allows and DNS egress; web pods of every
    other namespace open to api pods anywhere on 443; every third namespace scraped by monitoring namespaces."""
    from tenants.netpol.objects import Pod

    names = [f"team-{i:03d}" for i in range(namespaces)]
    labels = {n: {NAME: n, "tenant": f"t{i % 7}", **({"monitoring": "yes"} if i % 10 == 0 else {})} for i, n in enumerate(names)}
    apps = ["web", "api", "db", "worker"]
    pods = [Pod(n, f"{n}-{j}", {"app": apps[j % 4], "pod-template-hash": f"h{j % 3}"}) for n in names for j in range(pods_per_namespace)]
    policies: list[dict[str, Any]] = []
    for i, n in enumerate(names):
        same = {"namespaceSelector": {"matchLabels": {"tenant": f"t{i % 7}"}}}
        policies += [
            {"metadata": {"namespace": n, "name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
            {"metadata": {"namespace": n, "name": "same-tenant"}, "spec": {"podSelector": {}, "ingress": [{"from": [same]}],
                                                                          "egress": [{"to": [same]}]}},
            {"metadata": {"namespace": n, "name": "api-to-web"}, "spec": {
                "podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}]}]}},
            {"metadata": {"namespace": n, "name": "dns"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {NAME: "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"port": 53, "protocol": "UDP"}]}]}},
        ]
        if i % 2 == 0:
            policies.append({"metadata": {"namespace": n, "name": "web-from-api"}, "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["api"]}]}}], "ports": [{"port": 443}]}]}})
        if i % 3 == 0:
            policies.append({"metadata": {"namespace": n, "name": "scrape"}, "spec": {
                "podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"monitoring": "yes"}}}], "ports": [{"port": 9090}]}]}})
    return labels, pods, policies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--pods", type=int, default=8, help="pods per namespace")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pksweb.settings")
    import django

    django.setup()
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    from tenants.netpol.evaluation import Evaluation
    from tenants.segmentation import Matrix

    labels, pods, policies = world(args.namespaces, args.pods)
    request = RequestFactory().get("/")
    request.user = SimpleNamespace(is_authenticated=False)
    timings: dict[str, list[float]] = {"evaluate": [], "page": [], "api": []}
    reaches: dict[str, int] = {}
    size_page = size_api = 0
    for _ in range(args.runs):
        started = time.perf_counter()
        matrix = Matrix(sorted(labels), Evaluation(labels, pods, policies))
        timings["evaluate"].append(time.perf_counter() - started)
        started = time.perf_counter()
        html = render_to_string("tenants/segmentation.html", {"cluster": SimpleNamespace(pk=1, name="big"), "matrix": matrix,
                                                              "chosen": matrix.cell(matrix.namespaces[0], matrix.namespaces[1], explain=True)},
                                request=request)
        timings["page"].append(time.perf_counter() - started)
        started = time.perf_counter()
        cells = matrix.cells()
        payload = json.dumps({"namespaces": matrix.namespaces, "cells": cells})
        timings["api"].append(time.perf_counter() - started)
        size_page, size_api = len(html), len(payload)
        reaches = {r: sum(1 for c in cells if c["reach"] == r) for r in ("all", "some", "none")}

    median = {k: round(statistics.median(v) * 1000, 1) for k, v in timings.items()}
    shape = f"{args.namespaces} namespaces × {args.namespaces * args.pods} pods, {len(policies)} policies"
    figures = [
        figure(f"evaluate ({shape})", median["evaluate"], "ms", "< 300 ms", median["evaluate"] < 300),
        figure("page: all cells with verdicts, rendered", median["page"], "ms", "< 1000 ms", median["page"] < 1000),
        figure("API: all cells with reasons, as JSON", median["api"], "ms", "< 2000 ms", median["api"] < 2000),
        figure("page size", round(size_page / 1024), "KiB", "", None),
        figure("API size", round(size_api / 1024), "KiB", "", None),
    ]
    print_figures(f"segmentation matrix, median of {args.runs} runs; cells {reaches}", figures)
    write("segmentation", {"namespaces": args.namespaces, "pods": args.namespaces * args.pods, "policies": len(policies),
                           "reach": reaches, "ms": median, "page_bytes": size_page, "api_bytes": size_api}, figures)


if __name__ == "__main__":
    main()
