"""Who can reach whom: a namespace-to-namespace matrix computed pod by pod from a
cluster's actual NetworkPolicies, compared with what pksweb's bundles intend.

Each cell says whether **all**, **some** or **none** of the pod pairs from the source
namespace to the target namespace may connect, and names the policies and rules that
decide it (the evaluation and its semantics are in ``tenants.netpol``). Two choices an
operator should know:

- It is about whether *any* port is reachable: a rule that lists numeric ports still
  allows some traffic (the ports are shown in the rule's explanation), while a named port
  reaches only the pods whose containers declare it (for egress, the destination pods).
- ``ipBlock`` peers match pods by their IPs (``status.podIPs``), with ``except``; a pod
  that has no IP yet matches none.
- A namespace without pods is evaluated for a hypothetical new pod without labels, so a
  fresh tenant namespace already shows whether it is sealed.

Intent is the same evaluation over the same pods with the Namespace labels and
NetworkPolicies pksweb's bundles want for its tenant namespaces; a cell drifts when the
actual reach differs from the intended one (intended all but actually some or none,
intended none but actually some or all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clusters.connect import gateway_for
from clusters.kube import KubeError
from clusters.models import Cluster
from tenants import bundle
from tenants.models import TenantNamespace
from tenants.netpol.evaluation import Cell, Evaluation, Reason
from tenants.netpol.objects import pods_from_raw

SYMBOLS = {"all": "✓", "some": "◐", "none": "✕"}


@dataclass
class Matrix:
    namespaces: list[str]
    evaluation: Evaluation | None = None
    intended_evaluation: Evaluation | None = None
    intent_for: set[str] = field(default_factory=set)  # pksweb's tenant namespaces: intent is known for their rows and columns
    error: str = ""

    @property
    def pods(self) -> dict[str, int]:
        """Real pods per namespace (0: evaluated for a hypothetical new pod)."""
        return dict(self.evaluation.real_pods) if self.evaluation else {}

    @property
    def partial(self) -> list[str]:
        """Policies whose podSelector selects only some pods of their namespace (evaluated pod by pod)."""
        if self.evaluation is None:
            return []
        return [p.key for p in self.evaluation.policies if p.pod_selector.get("matchLabels") or p.pod_selector.get("matchExpressions")]

    def actual(self, source: str, target: str) -> Cell:
        assert self.evaluation is not None
        return self.evaluation.cell(source, target)

    def intended(self, source: str, target: str) -> Cell | None:
        if self.intended_evaluation is None or (source not in self.intent_for and target not in self.intent_for):
            return None
        return self.intended_evaluation.cell(source, target)

    def cell(self, source: str, target: str, *, explain: bool = False) -> dict[str, Any]:
        """One cell as pages and the API show it; ``explain`` adds the reasons (the costlier part)."""
        assert self.evaluation is not None
        actual, intent = self.actual(source, target), self.intended(source, target)
        data: dict[str, Any] = {
            "source": source, "target": target, "reach": actual.reach, "allowed": actual.allowed,
            "pairs_allowed": actual.pairs_allowed, "pairs": actual.pairs,
            "intended": None if intent is None else intent.allowed, "intended_reach": None if intent is None else intent.reach,
            "drift": intent is not None and intent.reach != actual.reach,
            "summary": self.evaluation.summary(actual), "symbol": SYMBOLS[actual.reach],
        }
        if explain:
            data["reasons"] = [reason_data(r) for r in self.evaluation.reasons(source, target)]
        return data

    def rows(self) -> list[dict[str, Any]]:
        """One row per source namespace: its real pod count and its cells (without reasons)."""
        pods = self.pods
        return [{"source": s, "pods": pods.get(s, 0), "cells": [self.cell(s, t) for t in self.namespaces]} for s in self.namespaces]

    def cells(self, *, source: str = "", target: str = "") -> list[dict[str, Any]]:
        """Every cell with its reasons, optionally only one source row and/or target column."""
        return [self.cell(s, t, explain=True) for s in self.namespaces for t in self.namespaces
                if (not source or s == source) and (not target or t == target)]


def reason_data(reason: Reason) -> dict[str, Any]:
    return {"direction": reason.direction, "policy": reason.policy, "rule": reason.rule, "text": reason.text}


def cluster_segmentation(cluster: Cluster, *, include_system: bool = False) -> Matrix:
    """The matrix for one cluster, read live (namespaces, pods, policies), with pksweb's intent alongside."""

    try:
        gateway = gateway_for(cluster)
        listed = gateway.objects.list("Namespace")
        policies = gateway.objects.list("NetworkPolicy")
        pods = pods_from_raw(gateway.pods_raw())
    except KubeError as exc:
        return Matrix([], error=exc.message)
    labels = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in listed
              if include_system or n["metadata"]["name"] not in bundle.SYSTEM_NAMESPACES}
    matrix = Matrix(sorted(labels), Evaluation(labels, pods, policies))
    tenant_namespaces = [ns for ns in TenantNamespace.objects.filter(cluster=cluster).select_related("tenant") if ns.name in labels]
    if tenant_namespaces:
        intended_labels = dict(labels)
        intended_policies = [p for p in policies if p["metadata"]["namespace"] not in {ns.name for ns in tenant_namespaces}]
        for ns in tenant_namespaces:
            wanted = bundle.desired_bundle(ns.tenant, ns.name)
            intended_labels[ns.name] = wanted[0]["metadata"]["labels"]
            intended_policies += [o for o in wanted if o["kind"] == "NetworkPolicy"]
        matrix.intended_evaluation = Evaluation(intended_labels, pods, intended_policies)
        matrix.intent_for = {ns.name for ns in tenant_namespaces}
    return matrix
