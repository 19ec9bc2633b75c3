"""The resource types the sandbox serves, with their discovery data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    has_status: bool = field(default=True)
    # A review (SelfSubjectAccessReview, ...): created to be answered, never stored.
    virtual: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), ("status", "finalize")),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    ResourceType("", "v1", "pods", "Pod", True, ("po",), ("status", "eviction")),
    ResourceType("", "v1", "events", "Event", True, ("ev",), (), has_status=False),
    ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    ResourceType("", "v1", "limitranges", "LimitRange", True, ("limits",), (), has_status=False),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), (), has_status=False),
    ResourceType("", "v1", "services", "Service", True, ("svc",), ("status",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",), (), has_status=False),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale")),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale")),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale")),
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), ("status",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",), (), has_status=False),
    # Node heartbeats: each kubelet renews a Lease named after its node in kube-node-lease.
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, (), (), has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True, (), (), has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, (), (), has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, (), (), has_status=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, (), (), has_status=False),
    # The system-upgrade-controller's CRD, as on a k3s/RKE2 cluster that has it installed.
    ResourceType("upgrade.cattle.io", "v1", "plans", "Plan", True, (), ("status",)),
    # Answered from the cluster's RBAC (``reviews.py``): what ``kubectl auth can-i`` asks.
    *(ResourceType("authorization.k8s.io", "v1", plural, kind, namespaced, verbs=("create",), virtual=True)
      for plural, kind, namespaced in (("selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
                                       ("selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
                                       ("subjectaccessreviews", "SubjectAccessReview", False),
                                       ("localsubjectaccessreviews", "LocalSubjectAccessReview", True))),
)

BY_PATH: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in RESOURCES}
GROUPS: dict[str, list[str]] = {}
for _r in RESOURCES:
    if _r.group and _r.version not in GROUPS.setdefault(_r.group, []):
        GROUPS[_r.group].append(_r.version)


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return BY_PATH.get((group, version, plural))


def by_plural(plural: str, group: str | None = None) -> ResourceType:
    """The resource type called ``plural`` (in ``group``, or in whichever group has it)."""
    for resource in RESOURCES:
        if resource.plural == plural and (group is None or resource.group == group):
            return resource
    raise KeyError(plural)


# The types the simulation itself reads and writes (controllers, scheduler, kubelets).
NAMESPACES = by_plural("namespaces")
NODES = by_plural("nodes")
PODS = by_plural("pods")
EVENTS = by_plural("events")
SERVICES = by_plural("services")
QUOTAS = by_plural("resourcequotas")
PLANS = by_plural("plans", "upgrade.cattle.io")
SERVICEACCOUNTS = by_plural("serviceaccounts")
DEPLOYMENTS = by_plural("deployments", "apps")
REPLICASETS = by_plural("replicasets", "apps")
DAEMONSETS = by_plural("daemonsets", "apps")
STATEFULSETS = by_plural("statefulsets", "apps")
PDBS = by_plural("poddisruptionbudgets", "policy")
LEASES = by_plural("leases", "coordination.k8s.io")
ROLES = by_plural("roles", "rbac.authorization.k8s.io")
ROLEBINDINGS = by_plural("rolebindings", "rbac.authorization.k8s.io")
CLUSTERROLES = by_plural("clusterroles", "rbac.authorization.k8s.io")
CLUSTERROLEBINDINGS = by_plural("clusterrolebindings", "rbac.authorization.k8s.io")


def api_resource_list(group: str, version: str) -> dict[str, Any]:
    """The APIResourceList discovery document for one group/version."""
    entries = []
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        entries.append(
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
                **({"shortNames": list(r.short_names)} if r.short_names else {}),
            }
        )
        for sub in r.subresources:
            sub_kind = {"eviction": "Eviction", "scale": "Scale"}.get(sub, r.kind)
            sub_verbs = {"eviction": ["create"], "finalize": ["update"]}.get(sub, ["get", "patch", "update"])
            entries.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    **({"group": "policy", "version": "v1"} if sub == "eviction" else {}),
                    "kind": sub_kind,
                    "verbs": sub_verbs,
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def api_group(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in GROUPS[group]]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group(g) for g in GROUPS]}
