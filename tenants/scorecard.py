"""The isolation scorecard: is a tenant still as isolated as its profile says?

Computed from the cluster's actual objects (never from pksweb's intent).
"""

from __future__ import annotations

from dataclasses import dataclass

from clusters.kube import KubeError
from tenants import bundle
from tenants.choices import Isolation
from tenants.models import NodeAssignment, Tenant, TenantNamespace


@dataclass
class Check:
    cluster: str
    subject: str
    check: str
    ok: bool
    detail: str = ""


def _default_deny(policies: list[dict]) -> bool:
    for policy in policies:
        spec = policy.get("spec") or {}
        types = set(spec.get("policyTypes") or [])
        if (spec.get("podSelector") or {}) == {} and {"Ingress", "Egress"} <= types and not spec.get("ingress") and not spec.get("egress"):
            return True
    return False


def tenant_scorecard(tenant: Tenant) -> list[Check]:
    """Every check for every cluster the tenant has namespaces or nodes on."""
    from clusters.services import gateway_for

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
            wide = [b["metadata"]["name"] for b in gateway.cluster_role_bindings()
                    if any(s.get("kind") == "Group" and s.get("name") == tenant.group for s in b.get("subjects") or [])]
            checks.append(Check(cluster.name, "cluster", f"no ClusterRoleBinding grants {tenant.group} cluster-wide rights",
                                not wide, ", ".join(wide)))
            if tenant.isolation == Isolation.DEDICATED_NODES:
                own = {n.name for n in namespaces if n.cluster_id == cluster.pk}
                pods = gateway.pods_all()
                for assignment in (a for a in assignments if a.cluster_id == cluster.pk):
                    node = gateway.node(assignment.node)
                    labelled = node.labels.get(bundle.TENANT_LABEL) == tenant.name
                    tainted = f"{bundle.TENANT_LABEL}={tenant.name}:NoSchedule" in node.taints
                    checks.append(Check(cluster.name, assignment.node, "dedicated node labelled and tainted", labelled and tainted,
                                        "" if labelled and tainted else f"label {'ok' if labelled else 'missing'}, taint {'ok' if tainted else 'missing'}"))
                    strangers = [p.key for p in pods if p.node == assignment.node and p.namespace not in own
                                 and p.owner_kind != "DaemonSet" and not p.mirror]
                    checks.append(Check(cluster.name, assignment.node, "no other tenant's pod on the node", not strangers,
                                        ", ".join(strangers[:5])))
        except KubeError as exc:
            checks.append(Check(cluster.name, "cluster", "cluster readable", False, exc.message))
    return checks
