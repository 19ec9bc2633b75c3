"""Who can reach whom: a namespace-to-namespace matrix computed from a cluster's actual
NetworkPolicies, compared with what pksweb's bundles intend.

The model is the NetworkPolicy semantics at namespace granularity: a namespace is
isolated for ingress (egress) when a policy selecting all its pods has that policy
type; then traffic is allowed only if some rule's peer matches the other namespace.
A connection A → B needs A's egress and B's ingress to allow it. Policies selecting
only some pods are reported as such, not counted as isolating the whole namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clusters.kube import KubeError
from clusters.models import Cluster
from tenants import bundle
from tenants.models import TenantNamespace


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values or op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels or op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_allows(peer: dict[str, Any], own_ns: str, other_ns: str, other_labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False  # IP blocks describe traffic leaving or entering the cluster
    if "namespaceSelector" in peer:
        return _selector_matches(peer["namespaceSelector"], other_labels)
    return other_ns == own_ns  # a podSelector alone means pods of the policy's own namespace


def _direction(policies: list[dict[str, Any]], direction: str, own_ns: str, other_ns: str, other_labels: dict[str, str]) -> bool:
    """Does ``own_ns`` allow ``direction`` ("ingress" from / "egress" to) ``other_ns``?"""
    key, peers_key = ("ingress", "from") if direction == "ingress" else ("egress", "to")
    kind = "Ingress" if direction == "ingress" else "Egress"
    isolating = [p for p in policies if (p.get("spec") or {}).get("podSelector") in ({}, None)
                 and kind in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])]
    if not isolating:
        return True
    for policy in isolating:
        for rule in (policy.get("spec") or {}).get(key) or []:
            peers = rule.get(peers_key)
            if not peers:  # an empty from/to allows everyone
                return True
            if any(_peer_allows(peer, own_ns, other_ns, other_labels) for peer in peers):
                return True
    return False


@dataclass
class Matrix:
    namespaces: list[str]
    allowed: dict[tuple[str, str], bool]
    intended: dict[tuple[str, str], bool] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)
    error: str = ""

    def cell(self, source: str, target: str) -> dict[str, Any]:
        actual = self.allowed.get((source, target))
        intent = self.intended.get((source, target))
        return {"allowed": actual, "intended": intent, "drift": intent is not None and actual != intent}

    def rows(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return [(s, [{**self.cell(s, t), "target": t} for t in self.namespaces]) for s in self.namespaces]


def compute(namespaces: dict[str, dict[str, str]], policies_by_ns: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], bool]:
    allowed = {}
    for source, source_labels in namespaces.items():
        for target, target_labels in namespaces.items():
            egress = _direction(policies_by_ns.get(source, []), "egress", source, target, target_labels)
            ingress = _direction(policies_by_ns.get(target, []), "ingress", target, source, source_labels)
            allowed[(source, target)] = egress and ingress
    return allowed


def cluster_segmentation(cluster: Cluster, *, include_system: bool = False) -> Matrix:
    """The matrix for one cluster, with pksweb's intent for tenant namespaces alongside."""
    from clusters.services import gateway_for

    try:
        ops = gateway_for(cluster).objects
        listed = ops.list("Namespace")
        policies = ops.list("NetworkPolicy")
    except KubeError as exc:
        return Matrix([], {}, error=exc.message)
    labels = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in listed
              if include_system or n["metadata"]["name"] not in bundle.SYSTEM_NAMESPACES}
    by_ns: dict[str, list[dict[str, Any]]] = {}
    partial = []
    for policy in policies:
        ns = policy["metadata"]["namespace"]
        by_ns.setdefault(ns, []).append(policy)
        if (policy.get("spec") or {}).get("podSelector") not in ({}, None):
            partial.append(f"{ns}/{policy['metadata']['name']}")
    matrix = Matrix(sorted(labels), compute(labels, by_ns), partial=sorted(partial))
    # Intent: the same computation over the bundles pksweb wants for its namespaces.
    tenant_namespaces = list(TenantNamespace.objects.filter(cluster=cluster).select_related("tenant"))
    if tenant_namespaces:
        intended_labels = dict(labels)
        intended_policies = {ns: pols for ns, pols in by_ns.items()}
        for ns in tenant_namespaces:
            wanted = bundle.desired_bundle(ns.tenant, ns.name)
            intended_labels[ns.name] = wanted[0]["metadata"]["labels"]
            intended_policies[ns.name] = [o for o in wanted if o["kind"] == "NetworkPolicy"]
        intended = compute(intended_labels, intended_policies)
        ours = {ns.name for ns in tenant_namespaces}
        matrix.intended = {k: v for k, v in intended.items() if (k[0] in ours or k[1] in ours) and k[0] in labels and k[1] in labels}
    return matrix
