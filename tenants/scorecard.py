"""The isolation scorecard: is a tenant still as isolated as its profile says?

Computed from the cluster's actual objects (never from pksweb's intent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clusters.connect import gateway_for
from clusters.kube import KubeError
from tenants import bundle
from tenants.bundle import Obj
from tenants.choices import Isolation
from tenants.models import NodeAssignment, Tenant, TenantNamespace


@dataclass
class Check:
    cluster: str
    subject: str
    check: str
    ok: bool
    detail: str = ""


def _default_deny(policies: list[Obj]) -> bool:
    for policy in policies:
        spec = policy.get("spec") or {}
        types = set(spec.get("policyTypes") or [])
        if (spec.get("podSelector") or {}) == {} and {"Ingress", "Egress"} <= types and not spec.get("ingress") and not spec.get("egress"):
            return True
    return False


GUARD_RAILS = {("", "resourcequotas"), ("", "limitranges"), ("", "namespaces"), ("networking.k8s.io", "networkpolicies"),
               ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings")}
WRITES = {"create", "update", "patch", "delete", "deletecollection", "*"}
ENFORCED_LEVELS = ("baseline", "restricted")


def _guard_rail_writes(rules: list[Obj]) -> list[str]:
    """What ``rules`` let a subject change among the objects that keep a tenant in its place."""
    found = []
    for rule in rules:
        verbs = WRITES & set(rule.get("verbs") or [])
        if not verbs:
            continue
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                hit = sorted(r for g, r in GUARD_RAILS if group in (g, "*") and resource in (r, "*"))
                found += [f"{r} ({', '.join(sorted(verbs))})" for r in hit]
    return sorted(set(found))


def _tenant_admin_writes(ops: Any, tenant: Tenant, namespace: str) -> list[str]:
    found = []
    for binding in ops.list("RoleBinding", namespace):
        if not any(s.get("kind") == "Group" and s.get("name") == tenant.group for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        role = ops.get(ref.get("kind", ""), ref.get("name", ""), "" if ref.get("kind") == "ClusterRole" else namespace)
        found += _guard_rail_writes((role or {}).get("rules") or [])
    return sorted(set(found))


def tenant_scorecard(tenant: Tenant) -> list[Check]:
    """Every check for every cluster the tenant has namespaces or nodes on."""

    checks: list[Check] = []
    namespaces = list(TenantNamespace.objects.filter(tenant=tenant).select_related("cluster"))
    assignments = list(NodeAssignment.objects.filter(tenant=tenant).select_related("cluster"))
    clusters = {n.cluster for n in namespaces} | {a.cluster for a in assignments}
    for cluster in sorted(clusters, key=lambda c: c.name):
        try:
            gateway = gateway_for(cluster)
            ops = gateway.objects
            for ns in (n for n in namespaces if n.cluster_id == cluster.pk):
                policies = ops.list("NetworkPolicy", ns.name)
                checks.append(Check(cluster.name, ns.name, "default-deny NetworkPolicy present", _default_deny(policies),
                                    "" if _default_deny(policies) else "no policy denies all ingress and egress by default"))
                quotas = ops.list("ResourceQuota", ns.name)
                checks.append(Check(cluster.name, ns.name, "ResourceQuota present", bool(quotas),
                                    ", ".join(q["metadata"]["name"] for q in quotas) or "no quota: the namespace can use the whole cluster"))
                actual = ops.get("Namespace", ns.name) or {}
                level = ((actual.get("metadata") or {}).get("labels") or {}).get(bundle.POD_SECURITY_LABEL, "")
                checks.append(Check(cluster.name, ns.name, "Pod Security enforced (baseline or restricted)", level in ENFORCED_LEVELS,
                                    level or "no enforce label: privileged pods are admitted"))
                writes = _tenant_admin_writes(ops, tenant, ns.name)
                checks.append(Check(cluster.name, ns.name, "tenant admins cannot change quotas, policies or Pod Security",
                                    not writes, ", ".join(writes)))
            wide = [b["metadata"]["name"] for b in gateway.cluster_role_bindings()
                    if any(s.get("kind") == "Group" and s.get("name") == tenant.group for s in b.get("subjects") or [])]
            checks.append(Check(cluster.name, "cluster", f"no ClusterRoleBinding grants {tenant.group} cluster-wide rights",
                                not wide, ", ".join(wide)))
            if tenant.isolation == Isolation.DEDICATED_NODES:
                own = {n.name for n in namespaces if n.cluster_id == cluster.pk}
                pods = gateway.pods_all()
                for assignment in (a for a in assignments if a.cluster_id == cluster.pk):
                    node = gateway.node(assignment.node)
                    missing = bundle.dedication_missing(tenant.name, node.labels, node.taints)
                    labelled, tainted = "label" not in missing, "taint" not in missing
                    checks.append(Check(cluster.name, assignment.node, "dedicated node labelled and tainted", labelled and tainted,
                                        "" if labelled and tainted else f"label {'ok' if labelled else 'missing'}, taint {'ok' if tainted else 'missing'}"))
                    strangers = [p.key for p in pods if p.node == assignment.node and p.namespace not in own
                                 and p.owner_kind != "DaemonSet" and not p.mirror]
                    checks.append(Check(cluster.name, assignment.node, "no other tenant's pod on the node", not strangers,
                                        ", ".join(strangers[:5])))
        except KubeError as exc:
            checks.append(Check(cluster.name, "cluster", "cluster readable", False, exc.message))
    return checks
